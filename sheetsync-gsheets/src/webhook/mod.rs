//! Placeholder: the webhook receiver lands here.
