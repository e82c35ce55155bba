//! ASL engine tests through the `skein states` CLI (filled in with the engine).
