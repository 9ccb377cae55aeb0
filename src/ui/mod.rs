//! Drawing: a pure function of `app::State` (no I/O, no clock reads). PLACEHOLDER.
