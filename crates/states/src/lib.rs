//! skein-states
