//! skein-embedded
