//! sqlite backend (in progress)
