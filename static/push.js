// "Notify me of breaking news": the opt-in button for Web Push. Nothing is asked on load:
// the browser's permission prompt appears only when the reader clicks the button.

const OFF_TEXT = "Notify me of breaking news";
const ON_TEXT = "Stop breaking-news notifications";
const button = document.querySelector('[data-push="toggle"]');

const supported =
  "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

function keyBytes(base64url) {
  const base64 = base64url.replaceAll("-", "+").replaceAll("_", "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

async function currentSubscription() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

function show(subscribed) {
  button.dataset.state = subscribed ? "on" : "off";
  button.textContent = subscribed ? ON_TEXT : OFF_TEXT;
  button.setAttribute("aria-pressed", String(subscribed));
  button.hidden = false;
}

async function subscribe() {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    if (permission === "denied") button.hidden = true; // the browser will not ask again
    return;
  }
  const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  const keyResponse = await fetch("/api/push/key", { headers: { Accept: "application/json" } });
  if (!keyResponse.ok) throw new Error(`/api/push/key answered ${keyResponse.status}`);
  const { public_key: key } = await keyResponse.json();
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(key),
  });
  const saved = await fetch("/api/push/subscriptions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(subscription),
  });
  if (!saved.ok) {
    await subscription.unsubscribe();
    throw new Error(`subscribing answered ${saved.status}`);
  }
  show(true);
}

async function unsubscribe() {
  const subscription = await currentSubscription();
  if (subscription) {
    await fetch("/api/push/subscriptions", {
      method: "DELETE",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ endpoint: subscription.endpoint }),
    });
    await subscription.unsubscribe();
  }
  show(false);
}

async function start() {
  if (!button || !supported || Notification.permission === "denied") return;
  show(Boolean(await currentSubscription()));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await (button.dataset.state === "on" ? unsubscribe() : subscribe());
    } catch (error) {
      console.warn("livefeed: breaking-news notifications", error);
    } finally {
      button.disabled = false;
    }
  });
}

start().catch((error) => console.warn("livefeed: breaking-news notifications", error));
