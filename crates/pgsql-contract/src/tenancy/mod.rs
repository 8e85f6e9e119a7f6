//! Consumers are tenants, whatever interface they speak: who owns each
//! database and role ([`ownership`]), which extensions a consumer may have
//! and where ([`extensions`]), and whose access to take back and when a
//! relation needs a new password ([`revocation`]).

pub mod extensions;
pub mod logins;
pub mod ownership;
pub mod revocation;
