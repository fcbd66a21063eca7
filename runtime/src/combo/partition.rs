//! [`PartitionChannel`]: a parallel channel with one cluster sub-channel per partition, the
//! partitions read from the naming service's tags (brpc's `PartitionChannel`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::parallel::{Limits, Parallel, SubChannel};
use super::{CallMapper, ResponseMerger};
use crate::naming::ServerNode;
use crate::{Channel, ChannelOptions, Error};

/// The most partitions a [`PartitionChannel`] takes (each is a cluster channel of its own).
pub const MAX_PARTITIONS: usize = 1024;
/// Which partition a server serves: `index` of `count` (brpc's `Partition`, whose `count` is
/// `num_partition_kinds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Partition {
    /// The partition, in `0..count`.
    pub index: usize,
    /// How many partitions the data is split into.
    pub count: usize,
}

/// Reads a server's partition from its naming-service tag (brpc's `PartitionParser`).
/// `None` leaves the server out of every partition.
///
/// Any `Fn(&str) -> Option<Partition>` is a parser; [`DefaultPartitionParser`] reads `"N/M"`.
///
/// ```
/// use brisk::combo::{Partition, PartitionParser};
/// // Tags like "shard-2-of-4".
/// let parser = |tag: &str| {
///     let (index, count) = tag.strip_prefix("shard-")?.split_once("-of-")?;
///     Some(Partition { index: index.parse().ok()?, count: count.parse().ok()? })
/// };
/// assert_eq!(parser.parse("shard-2-of-4"), Some(Partition { index: 2, count: 4 }));
/// assert_eq!(parser.parse("canary"), None);
/// ```
pub trait PartitionParser: Send + Sync + 'static {
    /// The partition a server tagged `tag` serves, or `None`.
    fn parse(&self, tag: &str) -> Option<Partition>;
}

impl<F> PartitionParser for F
where
    F: Fn(&str) -> Option<Partition> + Send + Sync + 'static,
{
    fn parse(&self, tag: &str) -> Option<Partition> {
        self(tag)
    }
}

/// Reads brpc's `"N/M"` tags: partition `N` of `M` (`"0/3"` is the first of three).
/// Surrounding whitespace is ignored; anything else, and `N >= M`, is no partition.
///
/// ```
/// use brisk::combo::{DefaultPartitionParser, Partition, PartitionParser};
/// assert_eq!(DefaultPartitionParser.parse("1/3"), Some(Partition { index: 1, count: 3 }));
/// assert_eq!(DefaultPartitionParser.parse("3/3"), None);
/// assert_eq!(DefaultPartitionParser.parse("10"), None);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPartitionParser;

impl PartitionParser for DefaultPartitionParser {
    fn parse(&self, tag: &str) -> Option<Partition> {
        let (index, count) = tag.trim().split_once('/')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(count) {
            return None;
        }
        let partition = Partition {
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        };
        (partition.index < partition.count).then_some(partition)
    }
}

/// A [`ParallelChannel`](super::ParallelChannel) whose sub-channels are the partitions of one
/// naming service (brpc's `PartitionChannel`).
///
/// Each server's tag tells its partition, as a [`PartitionParser`] reads it (`"1/3"`:
/// partition 1 of 3, with [`DefaultPartitionParser`]). For each of the `num_partitions`
/// partitions the channel keeps a cluster channel over the servers of that partition (with
/// `count == num_partitions`; servers of other partitionings are ignored), load-balanced
/// as the `load_balancer` name says. A call goes to every partition at once — one server of
/// each — and the responses are merged, exactly as a parallel channel does: call mapper
/// (called with the partition index and `num_partitions`), response merger, `fail_limit`,
/// `success_limit`, timeout and [`Controller::sub`](crate::Controller::sub) all work the
/// same. A partition without servers fails its sub-call with [`errno::EHOSTDOWN`](crate::errno::EHOSTDOWN).
///
/// ```no_run
/// # async fn demo() -> Result<(), brisk::Status> {
/// use brisk::combo::{DefaultPartitionParser, PartitionChannel};
/// // Any failed partition fails the call.
/// let channel: brisk::Channel = PartitionChannel::builder()
///     .fail_limit(1)
///     .connect(2, "file:///etc/my_service/servers", "rr", DefaultPartitionParser)
///     .await?
///     .into();
/// // /etc/my_service/servers:
/// //   10.0.0.1:8000 0/2
/// //   10.0.0.2:8000 1/2
/// //   10.0.0.3:8000 1/2
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PartitionChannel {
    inner: Arc<Parallel>,
    options: ChannelOptions,
}

impl PartitionChannel {
    /// Starts building a partition channel with options.
    pub fn builder() -> PartitionChannelBuilder {
        PartitionChannelBuilder::default()
    }

    /// A partition channel with default options: see [`PartitionChannelBuilder::connect`].
    pub async fn connect(
        num_partitions: usize,
        naming_url: &str,
        load_balancer: &str,
        parser: impl PartitionParser,
    ) -> Result<PartitionChannel, Error> {
        PartitionChannel::builder()
            .connect(num_partitions, naming_url, load_balancer, parser)
            .await
    }

    /// The number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.inner.subs.len()
    }

    /// The cluster channel of partition `index` (to call one partition alone).
    pub fn partition(&self, index: usize) -> Option<&Channel> {
        self.inner.subs.get(index).map(|sub| &sub.channel)
    }

    /// A [`Channel`] calling through this partition channel, for client stubs or to nest in
    /// another combo channel.
    pub fn into_channel(self) -> Channel {
        Channel::from_combo(self.inner, self.options)
    }
}

impl From<PartitionChannel> for Channel {
    fn from(channel: PartitionChannel) -> Channel {
        channel.into_channel()
    }
}

impl fmt::Debug for PartitionChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionChannel")
            .field("partitions", &self.inner.subs)
            .field("fail_limit", &self.inner.fail_limit)
            .field("success_limit", &self.inner.success_limit)
            .field("timeout", &self.options.timeout)
            .finish()
    }
}

/// Builds a [`PartitionChannel`].
#[derive(Clone, Default)]
pub struct PartitionChannelBuilder {
    limits: Limits,
    mapper: Option<Arc<dyn CallMapper>>,
    merger: Option<Arc<dyn ResponseMerger>>,
    timeout: Option<Option<Duration>>,
    sub_options: ChannelOptions,
}

impl fmt::Debug for PartitionChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionChannelBuilder")
            .field("fail_limit", &self.limits.fail_limit)
            .field("success_limit", &self.limits.success_limit)
            .field("timeout", &self.timeout)
            .field("partition_options", &self.sub_options)
            .finish()
    }
}

impl PartitionChannelBuilder {
    /// The call mapper of every partition: called with the partition index and the number of
    /// partitions (default: every partition gets the call's request).
    pub fn call_mapper(mut self, mapper: impl CallMapper) -> Self {
        self.mapper = Some(Arc::new(mapper));
        self
    }

    /// The response merger of every partition (default: protobuf `MergeFrom` semantics).
    pub fn response_merger(mut self, merger: impl ResponseMerger) -> Self {
        self.merger = Some(Arc::new(merger));
        self
    }

    /// Fails the call as soon as `limit` partitions failed (default: all of them).
    pub fn fail_limit(mut self, limit: usize) -> Self {
        self.limits.fail_limit = Some(limit);
        self
    }

    /// Ends the call with success as soon as `limit` partitions answered; used only when
    /// [`fail_limit`](Self::fail_limit) is not set (default: all of them).
    pub fn success_limit(mut self, limit: usize) -> Self {
        self.limits.success_limit = Some(limit);
        self
    }

    /// Sets the deadline of a whole call, every partition included (default: that of
    /// [`partition_options`](Self::partition_options), 500 ms unless changed).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Some(timeout));
        self
    }

    /// Calls wait for the partitions without a deadline.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// Options of the partitions' cluster channels: connections, retries within a partition,
    /// health checks, protocol (default [`ChannelOptions::default`]).
    pub fn partition_options(mut self, options: ChannelOptions) -> Self {
        self.sub_options = options;
        self
    }

    /// Builds the channel: one cluster channel per partition over the servers `naming_url`
    /// lists whose tag `parser` reads as a partition of `num_partitions`, each balanced by
    /// `load_balancer` (a [`crate::lb`] name). Fails with [`errno::EINVAL`](crate::errno::EINVAL) when
    /// `num_partitions` is 0 or over [`MAX_PARTITIONS`], and as [`ChannelBuilder::connect_cluster`] fails (a bad URL or
    /// balancer, a naming service whose first list fails).
    ///
    /// [`ChannelBuilder::connect_cluster`]: crate::ChannelBuilder::connect_cluster
    pub async fn connect(
        self,
        num_partitions: usize,
        naming_url: &str,
        load_balancer: &str,
        parser: impl PartitionParser,
    ) -> Result<PartitionChannel, Error> {
        if num_partitions == 0 || num_partitions > MAX_PARTITIONS {
            return Err(Error::invalid(format!(
                "a PartitionChannel needs 1 to {MAX_PARTITIONS} partitions, not {num_partitions}"
            )));
        }
        let parser: Arc<dyn PartitionParser> = Arc::new(parser);
        let mut subs = Vec::with_capacity(num_partitions);
        for index in 0..num_partitions {
            let parser = Arc::clone(&parser);
            let filter = move |node: &ServerNode| {
                parser.parse(&node.tag)
                    == Some(Partition {
                        index,
                        count: num_partitions,
                    })
            };
            let channel = Channel::builder()
                .options(self.sub_options.clone())
                .naming_filter(filter)
                .connect_cluster(naming_url, load_balancer)
                .await
                .map_err(|e| e.in_context(format!("partition {index}/{num_partitions}")))?;
            subs.push(SubChannel::new(
                channel,
                self.mapper.clone(),
                self.merger.clone(),
            ));
        }
        let mut options = self.sub_options;
        if let Some(timeout) = self.timeout {
            options.timeout = timeout;
        }
        Ok(PartitionChannel {
            inner: Arc::new(Parallel {
                kind: "PartitionChannel",
                subs,
                fail_limit: self.limits.fail_limit,
                success_limit: self.limits.success_limit,
                timeout: options.timeout,
            }),
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno;

    #[test]
    fn default_parser_reads_n_of_m() {
        let p = DefaultPartitionParser;
        assert_eq!(p.parse("0/3"), Some(Partition { index: 0, count: 3 }));
        assert_eq!(p.parse(" 2/3 "), Some(Partition { index: 2, count: 3 }));
        for bad in [
            "", "/", "1/", "/3", "3/3", "-1/3", "+1/3", "a/3", "1/3/4", "1 /3", "10",
        ] {
            assert_eq!(p.parse(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn zero_partitions_is_refused() {
        let err =
            PartitionChannel::connect(0, "list://127.0.0.1:1 0/1", "rr", DefaultPartitionParser)
                .await
                .unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
    }
}
