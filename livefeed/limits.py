"""Every size, length, count, rate and timeout limit livefeed enforces, defined once."""

from __future__ import annotations

# Objects (SPEC "Objects"); characters are code points after NFC normalisation.
BRIEF_TEXT_MAX = 500
COMMENT_TEXT_MAX = 2_000
AUTHOR_MAX = 60
ARTICLE_TITLE_MAX = 300
ARTICLE_SUMMARY_MAX = 1_000
ARTICLE_PARAGRAPH_MAX = 10_000
ARTICLE_PARAGRAPHS_MAX = 200
REPORT_NOTE_MAX = 500
REPLIES_SHOWN = 100  # replies listed under one comment (the rest stay counted)
FEATURED_SHOWN = 10  # featured comments pinned above an article's comments
MODERATION_QUEUE = 100  # comments one moderation queue listing returns
SLUG_PATTERN = r"[a-z0-9-]{1,80}"
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"

# HTTP API.
HTTP_BODY_MAX = 64 * 1024
JSON_DEPTH_MAX = 8
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100

# WebSocket frames and subscriptions.
WS_FRAME_MAX = 4 * 1024  # larger text frames get an error frame
WS_MESSAGE_MAX = 64 * 1024  # larger frames close the connection with 1009
WS_BAD_FRAMES_MAX = 20  # this many bad frames ...
WS_BAD_FRAMES_WINDOW = 10.0  # ... within this many seconds close with 1008
WS_PING_INTERVAL = 20.0
WS_PING_TIMEOUT = 20.0
SUBSCRIPTIONS_MAX = 16  # topics per connection
SSE_TOPICS_MAX = SUBSCRIPTIONS_MAX
SSE_HEARTBEAT_INTERVAL = 15.0
EVENT_ID_MAX = 128  # length of an event id or SSE cursor a client may send back
SSE_CURSOR_MAX = 2_048

# Per-connection send queue: a reader this far behind is too slow (close 1013).
SEND_QUEUE_BYTES = 1024 * 1024
REPLAY_PAGE = 100  # stream entries read per step of a replay (it stops at the queue bound) ...
REPLAY_PAGE_BYTES = 256 * 1024  # ... and bytes of frames per step (at least one entry)
SUBSCRIBES_MAX = 20  # subscribe/unsubscribe frames per connection ...
SUBSCRIBES_WINDOW = 10.0  # ... within this many seconds; past it, `rate_limited` (a bad frame)

# Redis.
REDIS_CALL_TIMEOUT = 1.5  # so the API answers 503 within 2 s while Redis is unreachable
REDIS_CONNECT_TIMEOUT = 1.5
# LIVEFEED_REDIS_MIN_REPLICAS > 0: how long a write waits for its replicas (WAIT) before it
# is answered 503; within REDIS_CALL_TIMEOUT, with room for the write itself.
REDIS_WAIT_TIMEOUT = 1.0
REDIS_POOL_MAX = 512  # command connections per process; past it, a call waits its turn
# Sentinel: a client in use asks where the primary is this often (redis-py asks only when
# it opens a connection, and a former primary still up keeps the open ones).
SENTINEL_CHECK_INTERVAL = 1.0
WRITE_ANSWER_TTL = 300  # seconds a write's answer is kept for a retried call
PUBSUB_RECONNECT_BACKOFF_MIN = 0.1
PUBSUB_RECONNECT_BACKOFF_MAX = 2.0
PUBSUB_PROBE_INTERVAL = 3.0  # the hub proves its subscription delivers this often ...
PUBSUB_PROBE_TIMEOUT = 2.0  # ... and reconnects when a probe is not back within this
RETRY_AFTER_REDIS_DOWN = 2  # seconds, for 503 answers

# Redis ingest (other services publishing briefs).
INGEST_PAYLOAD_MAX = 16 * 1024
INGEST_GROUP = "livefeed"
INGEST_LEASE_TTL = 10.0  # a dead consumer's lease expires after this many seconds
INGEST_LEASE_RENEW = 3.0
INGEST_STANDBY_POLL = 2.0  # how often a standby process tries to take the lease
INGEST_BATCH = 100
INGEST_BLOCK = 1.0  # XREADGROUP BLOCK, well under the lease TTL
INGEST_ATTEMPTS = 3  # failed deliveries before an entry is dead-lettered
INGEST_CLAIM_TTL = 60.0  # pub/sub: a message is claimed by one process for this long
INGEST_PUBSUB_QUEUE = 1_000
INGEST_SEEN_MAX = 10_000  # pub/sub payload digests remembered for numbering repeats

# The editors' desk.
EDITOR_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,31}"
PASSWORD_MIN = 10  # characters
PASSWORD_MAX = 1_024
PASSWORD_HASHES_AT_ONCE = 4  # argon2 is slow and memory-hungry by design: bound the concurrency
SESSION_IDLE = 12 * 3600  # seconds without a request before an editor signs in again
SESSION_MAX = 7 * 24 * 3600  # seconds after sign-in, however active
SESSION_TOUCH = 60  # seconds between idle-timer refreshes of one session
LOGIN_WINDOW = 15 * 60  # failed sign-ins are counted per window of this many seconds ...
LOGIN_FAILURES_PER_NAME = 5  # ... per (account name, address): past it, that address waits ...
LOGIN_FAILURES_PER_ADDRESS = 20  # ... and per client address: past it, the address waits
# Past LOGIN_FAILURES_PER_NAME attempts at one name from anywhere, each is slowed down by
# this much more per attempt, up to the cap: never a lockout of the name.
LOGIN_BACKOFF_STEP = 0.25  # seconds
LOGIN_BACKOFF_MAX = 3.0  # seconds
TOKENS_PER_EDITOR = 20
DESK_BRIEFS = 50  # briefs on the desk
DESK_COMMENTS = 100  # comments in the moderation view
DESK_COMMENTS_KEPT = 1_000  # the index of the latest comments across articles
DESK_ARTICLES = 200  # articles listed (and offered as a brief's link)
DESK_ACTIVITY = 20  # entries of the desk log shown
DESK_ACTIVITY_KEPT = 10_000  # entries of the desk log kept
DESK_STREAM_QUEUE = 256  # notices waiting for one editor's live stream; past it, it restarts
PRESENCE_INTERVAL = 5.0  # seconds between reports of a process's reader counts
PRESENCE_STALE = 3 * PRESENCE_INTERVAL  # a process that has not reported this long is gone

# Redis server.
REDIS_MIN_VERSION = (7, 0)  # EXPIRE ... NX, SPUBLISH/SSUBSCRIBE; checked at start

# Server.
HTTP_KEEPALIVE_TIMEOUT = 5
SHUTDOWN_STEP = 3.0  # seconds each shutdown step (after the drain) may take, whatever Redis does
HTTP_HEADER_TIMEOUT = 10.0  # a request's headers must be complete this soon (slowloris)
HTTP_HEADER_BYTES_MAX = 16 * 1024  # request line + headers; past it, 431 and close
HTTP_LINGER = 2.0  # seconds a refused request's connection stays open to take its answer
HTTP_BODY_TIMEOUT = 10.0  # a request body must have fully arrived this soon; else 408

# Reader pages under a spike (pages/render_cache.py): rendered article pages kept per
# process, each reused while the positions of its topics stand still ...
PAGE_CACHE_ENTRIES = 256  # ... at most this many pages (slug and page of comments) ...
PAGE_CACHE_BYTES = 16 * 1024 * 1024  # ... of at most this many bytes of HTML together ...
# ... and re-rendered after this many seconds even so: what no position tracks (times shown
# relative to now, other articles' comment counts in "Read next") is this fresh at worst.
PAGE_CACHE_MAX_AGE = 10.0
PAGE_SHARED_MAX_AGE = 5  # seconds a shared cache (CDN) may serve a page without asking
PAGE_STALE_WHILE_REVALIDATE = 10  # ... and serve it stale while it asks, this much longer

# Web Push for breaking briefs.
PUSH_ENDPOINT_MAX = 2_048  # characters of a subscription's endpoint URL
PUSH_WINDOW = 900  # seconds: a breaking brief is pushed within this window, then dropped
PUSH_TTL = 900  # the TTL header: a push service keeps an undelivered message this long
PUSH_CONCURRENCY = 32  # requests to push services in flight at once
PUSH_TIMEOUT = 10.0  # seconds for one request to a push service
PUSH_ATTEMPTS = 5  # tries per subscription for 429/5xx/network errors before "failed"
PUSH_BACKOFF_MIN = 0.5  # seconds before the first retry (doubling) without Retry-After
PUSH_RETRY_AFTER_MAX = 120.0  # a push service's Retry-After is honoured up to this
PUSH_LEASE_TTL = 5.0  # a dead dispatcher's lease expires after this many seconds
PUSH_LEASE_RENEW = 1.5
PUSH_STANDBY_POLL = 1.0  # how often a standby process tries to take the dispatcher lease
PUSH_POLL = 0.25  # seconds between reads of the briefs log for new breaking briefs
PUSH_CANCEL_CHECK = 0.2  # seconds between checks that a brief being pushed is still up
PUSH_SCAN_BATCH = 500  # subscriptions read per HSCAN

# The collector in a serving process (serving/collector.py): after startup, whatever has
# lived long enough to reach the oldest generation is frozen once this many objects are
# there, so a full collection never walks the thousands of readers' objects again: it
# walks at most about this many.
GC_FREEZE_AFTER = 20_000

# websockets' own bound on a handshake's header lines (websockets.http11.MAX_NUM_HEADERS):
# an upgrade with more is parsed by websockets itself, which refuses it.
WS_HANDSHAKE_HEADERS_MAX = 128
