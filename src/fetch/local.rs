//! Local inputs: files, directories, mbox and stdin. (Being written.)
