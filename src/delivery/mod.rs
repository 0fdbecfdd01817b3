//! The delivery engine: where webhooks may point ([`destination`]) and how deliveries are
//! signed ([`signing`]).

pub mod destination;
pub mod signing;
