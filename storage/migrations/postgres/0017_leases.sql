-- Several nodes (issue 13). Never edit once applied.
--
-- node_leases: one row per running node process (its key is fresh at every
-- start); the node pushes expires_at forward every third of its lease. Times
-- are the DATABASE's clock in ms, so nodes' clocks never have to agree.
CREATE TABLE node_leases (
    node_key   text PRIMARY KEY,
    expires_at bigint NOT NULL
);
-- room_leases: which node assigns a room's seq and ev. ``token`` grows by one
-- at every change of holder; every write of the holder checks (room, token)
-- inside its own transaction, under a row lock, so a node that lost the room
-- can never commit for it (the fencing token).
CREATE TABLE room_leases (
    room_id  text PRIMARY KEY,
    node_key text NOT NULL,
    token    bigint NOT NULL
);
CREATE INDEX room_leases_node_idx ON room_leases (node_key);
