// What every editor page script shares: sending the desk's forms, reading JSON, bylines.
// Server text always goes into the page with textContent, never as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

/** Show that the session ended (signed out elsewhere, expired): typed text stays put. */
export function showSignedOut() {
  const banner = $('[data-desk="signed-out"]');
  if (banner) banner.hidden = false;
}

async function errorMessage(response, data) {
  if (data && data.error && typeof data.error.message === "string") {
    const text = data.error.message;
    return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
  }
  return `The server answered ${response.status}. Please try again.`;
}

/**
 * POST a desk form (url-encoded, with the session's CSRF token) asking for JSON.
 * Resolves to {ok, status, data} or {ok: false, status, message}; never throws.
 */
export async function send(url, fields = {}) {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null) body.set(name, String(value));
  }
  body.set("csrf", csrfToken());
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body,
      credentials: "same-origin",
    });
  } catch {
    return { ok: false, status: 0, message: "The server cannot be reached. Try again." };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  if (response.status === 401) showSignedOut();
  if (!response.ok) {
    return { ok: false, status: response.status, message: await errorMessage(response, data) };
  }
  return { ok: true, status: response.status, data };
}

export async function getJSON(url) {
  const response = await fetch(url, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  if (response.status === 401) showSignedOut();
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/** A brief's length as the server counts it: code points after NFC, trimmed. */
export function briefLength(text) {
  return [...text.normalize("NFC").trim()].length;
}

const BYLINE = [
  ["published", "by"],
  ["created", "by"],
  ["corrected", "corrected by"],
  ["updated", "updated by"],
];

/** `by alice · corrected by bob`, as the server writes it. */
export function byline(credits = {}) {
  return BYLINE.filter(([action]) => credits[action])
    .map(([action, label]) => `${label} ${credits[action]}`)
    .join(" · ");
}

export function readConfig() {
  const block = document.getElementById("desk-config");
  if (!block) return null;
  try {
    return JSON.parse(block.textContent);
  } catch (error) {
    console.warn("livefeed desk: unreadable desk-config", error);
    return null;
  }
}

/** Run `fn`, logging instead of breaking the page when rendering one item fails. */
export function safely(what, fn) {
  try {
    fn();
  } catch (error) {
    console.warn(`livefeed desk: ${what}`, error);
  }
}
