//! Balancers by name, as brpc's load-balancer registry: `"rr"`, `"la"`,
//! `"c_murmurhash:replicas=50"`, ...

use super::{
    consistent_hashing, locality_aware, p2c, random, recover, round_robin, weighted_random,
    weighted_round_robin, LbParams, LoadBalancer,
};
use crate::{errno, Error, Status};

/// The load balancer `spec` names: `"rr"`, `"la"`, `"c_murmurhash:replicas=50"`, ...
/// Unknown names and parameters get [`errno::EINVAL`](crate::errno::EINVAL).
pub fn from_spec(spec: &str) -> Result<Box<dyn LoadBalancer>, Error> {
    build(spec).map_err(Error::from_status)
}

/// [`from_spec`], with the parameters' errors as balancers report them.
fn build(spec: &str) -> Result<Box<dyn LoadBalancer>, Status> {
    let (name, params) = match spec.split_once(':') {
        Some((name, params)) => (name.trim(), params),
        None => (spec.trim(), ""),
    };
    let mut params = LbParams::parse(spec, params)?;
    let recover = recover::RecoverPolicy::from_params(&mut params)?;
    let balancer: Box<dyn LoadBalancer> = match name {
        "rr" => Box::new(round_robin::RoundRobin::new()),
        "random" => Box::new(random::Random::new()),
        "wrr" => Box::new(weighted_round_robin::WeightedRoundRobin::new()),
        "wr" => Box::new(weighted_random::WeightedRandom::new()),
        "la" => Box::new(locality_aware::LocalityAware::new()),
        "c_murmurhash" => Box::new(consistent_hashing::ConsistentHashing::new(
            consistent_hashing::HashKind::Murmur3,
            &mut params,
        )?),
        "c_md5" => Box::new(consistent_hashing::ConsistentHashing::new(
            consistent_hashing::HashKind::Md5,
            &mut params,
        )?),
        "p2c" => Box::new(p2c::PeakEwmaP2c::new(&mut params)?),
        other => {
            return Err(Status::new(
                errno::EINVAL,
                format!(
                    "unknown load balancer `{other}` (expected rr, wrr, random, wr, la, \
                     c_murmurhash, c_md5 or p2c)"
                ),
            ))
        }
    };
    params.finish()?;
    match recover {
        Some(policy) if matches!(name, "rr" | "random") => {
            Ok(Box::new(recover::Recovering::new(balancer, policy)))
        }
        Some(_) => Err(Status::new(
            errno::EINVAL,
            format!("`{spec}`: min_working_instances works with rr and random only"),
        )),
        None => Ok(balancer),
    }
}
