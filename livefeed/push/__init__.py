"""Web Push for breaking briefs: subscriptions, VAPID keys, the one dispatcher per cluster."""
