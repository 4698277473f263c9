//! JSON forms (BEHAVIOR 1.4). STUB: replaced by the model work.
