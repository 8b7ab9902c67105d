//! memory-gateway
