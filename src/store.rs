//! Store: the SQLite report store. (Being written.)
