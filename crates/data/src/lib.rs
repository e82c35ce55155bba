//! skein-data
