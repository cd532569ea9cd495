//! # cortex-query — the read side (to come: issue 6)
//!
//! What will live here: the query HTTP API of DESIGN §8, the two-level cache (bounded
//! in-process `dashmap`, then Dragonfly over RESP, then PostgreSQL) invalidated through
//! NATS, read-your-writes waits on a position token, and the live change stream
//! (`GET /v1/changes`, server-sent events).
