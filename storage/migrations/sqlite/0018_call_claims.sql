-- Calls across nodes (issue 13). Never edit once applied.
--
-- call_claims: which call makes a user busy for every other call, whichever
-- node leads it. One row per busy user (the primary key is what makes two
-- calls racing for the same user from two nodes end with exactly one of
-- them holding the user). ``node_key`` is the node leading the call when it
-- claimed: a claim of a node whose lease ran out, or of a call stored as
-- ended, may be taken by another call.
CREATE TABLE call_claims (
    user_id  text PRIMARY KEY,
    call_id  text NOT NULL,
    node_key text NOT NULL
);
CREATE INDEX call_claims_call_idx ON call_claims (call_id);
