//! Empty: the spike is tests/server.rs.
