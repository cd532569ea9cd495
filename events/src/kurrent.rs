//! KurrentDB adapter (pending).
