//! SQLite implementation of the storage traits (embedded default).
