-- AI-message counters kept per period (issue 12). 0002 kept one row per user
-- with the current period's count only, so a paid interlude (free month ->
-- paid period -> back to free in the same month) overwrote the free month's
-- count and gave its messages back. Now each period has its own row, and the
-- UTC-day counter (one per user, across plans) has its own table. Existing
-- counts move over unchanged. Never edit once applied.
CREATE TABLE billing_usage_periods (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    period_key text NOT NULL,
    used       bigint NOT NULL,
    PRIMARY KEY (user_id, period_key)
);

CREATE TABLE billing_usage_days (
    user_id text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    day_key text NOT NULL,
    used    bigint NOT NULL
);

INSERT INTO billing_usage_periods (user_id, period_key, used)
    SELECT user_id, period_key, period_used FROM billing_usage;
INSERT INTO billing_usage_days (user_id, day_key, used)
    SELECT user_id, day_key, day_used FROM billing_usage;
DROP TABLE billing_usage;
