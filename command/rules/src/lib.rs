//! Azure Policy rule engine (pending).
