//! The `waf` plugin: stands between the internet and the apps.

pub mod inspect;
pub mod normalize;
pub mod rules;
