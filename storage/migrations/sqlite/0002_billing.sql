-- Billing (SQLite): subscription record, orders, payments, webhook events, AI
-- counters. Never edit once applied. Times are integer ms since the Unix epoch.

-- One row per user who ever started a paid plan; no row means the free plan.
-- Gateways write it, quota checks read it (bridge/billing_plans.entitlement).
CREATE TABLE billing_subscriptions (
    user_id              TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    provider             TEXT NOT NULL,
    provider_ref         TEXT NOT NULL,
    customer_ref         TEXT,
    period_start         INTEGER NOT NULL,
    period_end           INTEGER NOT NULL,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX billing_subscriptions_ref_idx ON billing_subscriptions (provider, provider_ref);

-- Checkouts we started (Stripe Checkout Sessions, Konnect payments).
CREATE TABLE billing_orders (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    plan         TEXT NOT NULL,
    status       TEXT NOT NULL,
    amount       INTEGER,
    currency     TEXT,
    provider_ref TEXT,
    pay_url      TEXT,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
);
-- UNIQUE ignores NULLs: an order whose gateway call failed has no ref.
CREATE UNIQUE INDEX billing_orders_ref_key ON billing_orders (provider, provider_ref);
CREATE INDEX billing_orders_user_idx ON billing_orders (user_id, provider, created_at);

-- Payment history: paid and failed invoices (Stripe), completed payments (Konnect).
CREATE TABLE billing_payments (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    plan         TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    period_start INTEGER,
    period_end   INTEGER,
    created_at   INTEGER NOT NULL,
    CONSTRAINT billing_payments_ref_key UNIQUE (provider, provider_ref, status)
);
CREATE INDEX billing_payments_user_idx ON billing_payments (user_id, created_at);

-- Webhook events already applied: the deduplication of redeliveries.
CREATE TABLE billing_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
) WITHOUT ROWID;

-- AI-message counters, one row per user; a counter whose key (period, UTC
-- day) is not the current one counts as zero and restarts on the next use.
CREATE TABLE billing_usage (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    period_key  TEXT NOT NULL,
    period_used INTEGER NOT NULL,
    day_key     TEXT NOT NULL,
    day_used    INTEGER NOT NULL
);
