-- Billing (PostgreSQL): subscription record, orders, payments, webhook events, AI
-- counters. Never edit once applied. Times are integer ms since the Unix epoch.

-- One row per user who ever started a paid plan; no row means the free plan.
-- Gateways write it, quota checks read it (bridge/billing_plans.entitlement).
CREATE TABLE billing_subscriptions (
    user_id              text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    plan                 text NOT NULL,
    status               text NOT NULL,
    provider             text NOT NULL,
    provider_ref         text NOT NULL,
    customer_ref         text,
    period_start         bigint NOT NULL,
    period_end           bigint NOT NULL,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    updated_at           bigint NOT NULL
);
CREATE INDEX billing_subscriptions_ref_idx ON billing_subscriptions (provider, provider_ref);

-- Checkouts we started (Stripe Checkout Sessions, Konnect payments).
CREATE TABLE billing_orders (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     text NOT NULL,
    plan         text NOT NULL,
    status       text NOT NULL,
    amount       bigint,
    currency     text,
    provider_ref text,
    pay_url      text,
    created_at   bigint NOT NULL,
    completed_at bigint
);
-- UNIQUE ignores NULLs: an order whose gateway call failed has no ref.
CREATE UNIQUE INDEX billing_orders_ref_key ON billing_orders (provider, provider_ref);
CREATE INDEX billing_orders_user_idx ON billing_orders (user_id, provider, created_at);

-- Payment history: paid and failed invoices (Stripe), completed payments (Konnect).
CREATE TABLE billing_payments (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     text NOT NULL,
    provider_ref text NOT NULL,
    plan         text NOT NULL,
    amount       bigint NOT NULL,
    currency     text NOT NULL,
    status       text NOT NULL,
    period_start bigint,
    period_end   bigint,
    created_at   bigint NOT NULL,
    CONSTRAINT billing_payments_ref_key UNIQUE (provider, provider_ref, status)
);
CREATE INDEX billing_payments_user_idx ON billing_payments (user_id, created_at);

-- Webhook events already applied: the deduplication of redeliveries.
CREATE TABLE billing_events (
    provider    text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    received_at bigint NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- AI-message counters, one row per user; a counter whose key (period, UTC
-- day) is not the current one counts as zero and restarts on the next use.
CREATE TABLE billing_usage (
    user_id     text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    period_key  text NOT NULL,
    period_used bigint NOT NULL,
    day_key     text NOT NULL,
    day_used    bigint NOT NULL
);
