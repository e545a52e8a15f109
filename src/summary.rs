//! Summary. (Being written.)
