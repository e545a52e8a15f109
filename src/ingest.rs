//! Ingest: drives each input through extract → parse → store. (Being written.)
