//! skein-usecases
