//! postgres backend (in progress)
