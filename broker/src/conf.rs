//! The broker's configuration file, after RocketMQ's `broker.conf`.
//!
//! The format is Java-properties-like: one `key=value` per line, `#` starts a
//! comment line, blank lines are skipped, whitespace around keys and values is
//! trimmed. Keys keep RocketMQ's names so an existing file mostly carries
//! over; a key this broker does not know is an error rather than silently
//! ignored, so a typo never leaves a default in force.
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `brokerClusterName` | cluster name | `DefaultCluster` |
//! | `brokerName` | broker (group) name | `broker-a` |
//! | `brokerId` | `0` for a master, 1 or more for a slave | `0` |
//! | `brokerRole` | `ASYNC_MASTER` (acknowledges without waiting for a slave), `SYNC_MASTER` (once a slave holds the message durably: FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE) or `SLAVE` (copies its master's commit log, refuses writes, serves reads) | `ASYNC_MASTER` |
//! | `haMasterAddress` | a slave's master, `ip:port`; without it the name servers say | none |
//! | `slaveTimeout` | how long a SYNC_MASTER waits for a slave, ms | `3000` |
//! | `controllerAddr` | controllers, `a:9878;b:9878;c:9878`: controller mode, where the controllers elect the group's master (any `brokerId`) and replace it when it fails; `brokerRole` then says only ASYNC_MASTER or SYNC_MASTER (how a master replicates: SYNC waits for every replica of the sync-state set) | none |
//! | `enableControllerMode` | `true` with `controllerAddr` (RocketMQ wants both); `false` without | `false` |
//! | `haMaxTimeSlaveNotCatchup` | controller mode: a slave behind its master this long leaves the sync-state set, ms | `15000` |
//! | `controllerHeartbeatInterval` | ours: controller mode, how often the broker heartbeats the controllers, ms | `1000` |
//! | `namesrvAddr` | name servers, `a:9876;b:9876` | none |
//! | `listenPort` | port to listen on (all interfaces) | `10911` |
//! | `brokerIP1` | IP advertised to clients with `listenPort` | `127.0.0.1` |
//! | `listenAddr` | ours: `ip:port` to listen on and advertise, instead of the two above | |
//! | `storePathRootDir` | store directory | `store` (relative to the working directory) |
//! | `flushDiskType` | `SYNC_FLUSH` or `ASYNC_FLUSH` | `ASYNC_FLUSH` |
//! | `flushIntervalCommitLog` | ASYNC_FLUSH period, ms | `500` |
//! | `syncFlushTimeout` | SYNC_FLUSH wait before FLUSH_DISK_TIMEOUT, ms | `5000` |
//! | `flushIntervalConsumeQueue` | consume queue and index checkpoint period, ms | `1000` |
//! | `flushConsumerOffsetInterval` | consumer offset persistence period, ms | `5000` |
//! | `autoCreateTopicEnable` | `true` or `false` | `true` |
//! | `defaultTopicQueueNums` | queues of auto-created topics | `8` |
//! | `fileReservedTime` | retention, hours | `72` |
//! | `mappedFileSizeCommitLog` | commit log segment size, bytes | 64 MiB |
//! | `maxMessageSize` | largest body, bytes | 4 MiB |
//! | `registerNameServerPeriod` | registration period, ms | `30000` |
//! | `longPollingMaxMs` | ours: longest a pull is held, ms | `15000` |
//! | `rebalanceLockMaxLiveTime` | how long an orderly consumer's queue lock lasts after its last renewal, ms (RocketMQ's `rocketmq.broker.rebalance.lockMaxLiveTime`) | `60000` |
//! | `messageDelayLevel` | delay of each level, `1s 5s 10s ...` (units `ms`, `s`, `m`, `h`, `d`) | RocketMQ's 18 levels, `1s` to `2h` |
//! | `transactionTimeOut` | a half message is checked back once it is this old with no commit or rollback, ms | `6000` |
//! | `transactionCheckInterval` | how often half messages are scanned for check-back, ms | `60000` |
//! | `transactionCheckMax` | checks of one half before it is moved aside to `TRANS_CHECK_MAX_TIME_TOPIC` | `15` |
//! | `timerMaxDelaySec` | how far ahead a timer message may be set, seconds | `259200` (3 days) |
//!
//! Parsing is pure: it takes the file's text and returns a [`BrokerConf`] or
//! a [`ConfError`] naming the line and key.

use crate::model::TOPIC_QUEUES_MAX;
use crate::server::{BrokerConfig, FlushMode, ReplicationRole};
use crate::store::BODY_BYTES_LIMIT;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The longest a pull may be held, or a send wait for its fsync: an hour.
const LONG_POLLING_MAX_MS: u64 = 3_600_000;

/// RocketMQ's default broker port.
pub const LISTEN_PORT_DEFAULT: u16 = 10911;

/// A rejected configuration: where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {key}: {reason}")]
pub struct ConfError {
    /// 1-based line number in the file.
    pub line: usize,
    /// The key at fault, or the line's text when it is not `key=value`.
    pub key: String,
    /// What was wrong, as a sentence fragment.
    pub reason: String,
}

/// A parsed `broker.conf`: the broker's settings plus what the binary needs
/// to start it.
#[derive(Clone, Debug)]
pub struct BrokerConf {
    /// Settings handed to [`crate::server::Broker::open`].
    pub broker: BrokerConfig,
    /// Address to bind the listener to.
    pub listen_addr: SocketAddr,
    /// Directory of the store.
    pub store_dir: PathBuf,
    /// Things the operator should know that are not errors; the binary logs
    /// them as warnings: RocketMQ settings this broker does not act on.
    pub warnings: Vec<String>,
}

impl BrokerConf {
    /// Listens on `addr` and advertises it; an unspecified IP (`0.0.0.0`)
    /// keeps the advertised IP from the file.
    pub fn set_listen_addr(&mut self, addr: SocketAddr) {
        self.listen_addr = addr;
        self.broker.advertise_addr = advertised(addr, self.advertised_ip());
    }

    /// Replaces the name server list.
    pub fn set_namesrv_addrs(&mut self, addrs: Vec<String>) {
        self.broker.namesrv_addrs = addrs;
    }

    /// The IP part of the advertised address.
    fn advertised_ip(&self) -> IpAddr {
        self.broker
            .advertise_addr
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
}

/// The address clients are told: `listen` itself, or `ip` with its port
/// when `listen` is on every interface.
fn advertised(listen: SocketAddr, ip: IpAddr) -> String {
    if listen.ip().is_unspecified() {
        SocketAddr::new(ip, listen.port()).to_string()
    } else {
        listen.to_string()
    }
}

/// Splits a `;`-separated name server list, checking each is `host:port`.
pub fn parse_namesrv_list(text: &str) -> Result<Vec<String>, String> {
    let mut addrs = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((host, port)) = part.rsplit_once(':') else {
            return Err(format!("expected host:port, got {part:?}"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("expected host:port, got {part:?}"));
        }
        addrs.push(part.to_string());
    }
    if addrs.is_empty() {
        return Err("expected at least one host:port".to_string());
    }
    Ok(addrs)
}

fn parse_u64(value: &str) -> Result<u64, String> {
    value.parse::<u64>().map_err(|_| format!("expected a non-negative integer, got {value:?}"))
}

fn parse_positive(value: &str) -> Result<u64, String> {
    match parse_u64(value)? {
        0 => Err(format!("expected a positive integer, got {value:?}")),
        n => Ok(n),
    }
}

fn parse_at_most(value: &str, max: u64, what: &str) -> Result<u64, String> {
    match parse_positive(value)? {
        n if n > max => Err(format!("expected at most {max} ({what}), got {n}")),
        n => Ok(n),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// Every key Apache RocketMQ's broker reads from `broker.conf`.
const ROCKETMQ_KEYS: &str = include_str!("rocketmq_broker_keys.txt");

/// True for a key RocketMQ's broker knows.
fn is_rocketmq_key(key: &str) -> bool {
    ROCKETMQ_KEYS.lines().any(|known| known == key && !known.starts_with('#'))
}

/// Parses the text of a `broker.conf`.
pub fn parse(text: &str) -> Result<BrokerConf, ConfError> {
    let mut config = BrokerConfig::new("broker-a", "");
    let mut warnings = Vec::new();
    let (mut id_line, mut role_line) = (None, None);
    let (mut controller_line, mut controller_mode) = (None, None::<(bool, usize)>);
    let mut store_dir = PathBuf::from("store");
    let mut listen_port: Option<u16> = None;
    let mut broker_ip: Option<IpAddr> = None;
    let mut listen_addr: Option<SocketAddr> = None;
    // Key -> line it was set on, to refuse a key given twice.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    // Line where the listen address was chosen, to report a conflict there.
    let mut listen_lines: Vec<(usize, &str)> = Vec::new();

    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(ConfError { line, key: trimmed.to_string(), reason: "expected key=value".into() });
        };
        let (key, value) = (key.trim(), value.trim());
        let fail = |reason: String| ConfError { line, key: key.to_string(), reason };
        if key.is_empty() {
            return Err(ConfError { line, key: trimmed.to_string(), reason: "expected key=value, the key is empty".into() });
        }
        if let Some(first) = seen.insert(key.to_string(), line) {
            return Err(fail(format!("set twice, first on line {first}")));
        }
        match key {
            "brokerClusterName" => {
                crate::model::validate_name("cluster", value).map_err(fail)?;
                config.cluster = value.to_string();
            }
            "brokerName" => {
                crate::model::validate_name("broker", value).map_err(fail)?;
                config.broker_name = value.to_string();
            }
            "brokerId" => {
                config.broker_id = parse_u64(value).map_err(fail)?;
                id_line = Some(line);
            }
            "brokerRole" => {
                config.role = match value {
                    "ASYNC_MASTER" => ReplicationRole::AsyncMaster,
                    "SYNC_MASTER" => ReplicationRole::SyncMaster,
                    "SLAVE" => ReplicationRole::Slave,
                    _ => return Err(fail(format!("expected ASYNC_MASTER, SYNC_MASTER or SLAVE, got {value:?}"))),
                };
                role_line = Some(line);
            }
            "haMasterAddress" => {
                let addr = value.parse::<SocketAddr>().map_err(|_| fail(format!("expected ip:port, got {value:?}")))?;
                config.ha_master_addr = Some(addr.to_string());
            }
            "slaveTimeout" => config.slave_timeout_ms = parse_positive(value).and_then(|n| parse_at_most(&n.to_string(), LONG_POLLING_MAX_MS, "an hour")).map_err(fail)?,
            "namesrvAddr" => config.namesrv_addrs = parse_namesrv_list(value).map_err(fail)?,
            "controllerAddr" => {
                config.controller_addrs = parse_namesrv_list(value).map_err(fail)?;
                controller_line = Some(line);
            }
            "enableControllerMode" => controller_mode = Some((parse_bool(value).map_err(fail)?, line)),
            "haMaxTimeSlaveNotCatchup" => {
                config.ha_max_time_slave_not_catchup_ms =
                    parse_positive(value).and_then(|n| parse_at_most(&n.to_string(), LONG_POLLING_MAX_MS, "an hour")).map_err(fail)?
            }
            "controllerHeartbeatInterval" => {
                config.controller_heartbeat_ms =
                    parse_positive(value).and_then(|n| parse_at_most(&n.to_string(), 60_000, "a minute")).map_err(fail)?
            }
            "listenPort" => {
                let port = value.parse::<u16>().map_err(|_| fail(format!("expected a port number, got {value:?}")))?;
                listen_port = Some(port);
                listen_lines.push((line, key));
            }
            "brokerIP1" => {
                broker_ip = Some(value.parse::<IpAddr>().map_err(|_| fail(format!("expected an IP address, got {value:?}")))?);
            }
            "listenAddr" => {
                listen_addr =
                    Some(value.parse::<SocketAddr>().map_err(|_| fail(format!("expected ip:port, got {value:?}")))?);
                listen_lines.push((line, key));
            }
            "storePathRootDir" => {
                if value.is_empty() {
                    return Err(fail("expected a directory, got an empty value".into()));
                }
                store_dir = PathBuf::from(value);
            }
            "flushDiskType" => {
                config.flush = match value {
                    "SYNC_FLUSH" => FlushMode::Sync,
                    "ASYNC_FLUSH" => FlushMode::Async,
                    _ => return Err(fail(format!("expected SYNC_FLUSH or ASYNC_FLUSH, got {value:?}"))),
                }
            }
            "flushIntervalCommitLog" => config.flush_interval_ms = parse_positive(value).map_err(fail)?,
            "syncFlushTimeout" => {
                config.sync_flush_timeout_ms = parse_at_most(value, LONG_POLLING_MAX_MS, "an hour").map_err(fail)?
            }
            "flushIntervalConsumeQueue" => config.checkpoint_interval_ms = parse_positive(value).map_err(fail)?,
            "flushConsumerOffsetInterval" => config.offset_persist_interval_ms = parse_positive(value).map_err(fail)?,
            "autoCreateTopicEnable" => config.auto_create_topic = parse_bool(value).map_err(fail)?,
            "enablePropertyFilter" => config.enable_property_filter = parse_bool(value).map_err(fail)?,
            "defaultTopicQueueNums" => {
                let n = parse_at_most(value, u64::from(TOPIC_QUEUES_MAX), "the most queues a topic may have").map_err(fail)?;
                config.default_topic_queues = n as u32;
            }
            "fileReservedTime" => {
                let hours = parse_positive(value).map_err(fail)?;
                config.store.retention_ms =
                    hours.checked_mul(3_600_000).ok_or_else(|| fail(format!("{hours} hours is too long")))?;
            }
            "mappedFileSizeCommitLog" => config.store.segment_bytes = parse_positive(value).map_err(fail)?,
            "maxMessageSize" => {
                let n = parse_at_most(value, BODY_BYTES_LIMIT as u64, "a stored entry holds at most 5 MiB with its properties")
                    .map_err(fail)?;
                config.store.body_bytes_max = n as usize;
            }
            "rebalanceLockMaxLiveTime" => {
                config.lock_lease_ms = parse_at_most(value, LONG_POLLING_MAX_MS, "an hour").map_err(fail)?
            }
            "messageDelayLevel" => config.delay_levels = crate::model::DelayLevels::parse(value).map_err(fail)?,
            "transactionTimeOut" => {
                config.transaction_timeout_ms = parse_at_most(value, LONG_POLLING_MAX_MS, "an hour").map_err(fail)?
            }
            "transactionCheckInterval" => {
                config.transaction_check_interval_ms =
                    parse_positive(value).and_then(|n| parse_at_most(&n.to_string(), LONG_POLLING_MAX_MS, "an hour")).map_err(fail)?
            }
            "transactionCheckMax" => {
                config.transaction_check_max = parse_at_most(value, 1_000, "a thousand checks").map_err(fail)? as u32
            }
            "timerMaxDelaySec" => {
                let secs = parse_at_most(value, 10 * 365 * 24 * 3_600, "ten years").map_err(fail)?;
                config.timer_max_delay_ms = secs * 1_000;
            }
            "registerNameServerPeriod" => config.register_interval_ms = parse_positive(value).map_err(fail)?,
            "longPollingMaxMs" => {
                config.long_polling_max_ms = match parse_u64(value).map_err(fail)? {
                    n if n > LONG_POLLING_MAX_MS => {
                        return Err(fail(format!("expected at most {LONG_POLLING_MAX_MS} (an hour), got {n}")))
                    }
                    n => n,
                }
            }
            "sendMessageThreadPoolNums" => {
                config.send_workers = parse_at_most(value, 1_024, "a writer per core is plenty").map_err(fail)? as u32
            }
            "sendThreadPoolQueueCapacity" => {
                config.send_queue_capacity = parse_at_most(value, 10_000_000, "ten million waiting sends").map_err(fail)? as usize
            }
            "waitTimeMillsInSendQueue" => {
                config.send_queue_wait_ms = parse_at_most(value, LONG_POLLING_MAX_MS, "an hour").map_err(fail)?
            }
            // A stock RocketMQ broker.conf starts this broker: what it sets
            // that this broker has no use for is named, not refused.
            _ if is_rocketmq_key(key) => {
                warnings.push(format!("line {line}: {key}: a RocketMQ setting this broker does not act on; ignored"));
            }
            _ => return Err(fail("unknown key (neither this broker's nor a RocketMQ broker's)".into())),
        }
    }

    let controlled = !config.controller_addrs.is_empty();
    match controller_mode {
        Some((true, line)) if !controlled => {
            return Err(ConfError { line, key: "enableControllerMode".into(), reason: "true needs controllerAddr".into() })
        }
        Some((false, line)) if controlled => {
            return Err(ConfError { line, key: "enableControllerMode".into(), reason: "false, but controllerAddr is set".into() })
        }
        _ => {}
    }
    let slave = config.role == ReplicationRole::Slave;
    if controlled {
        // The controllers decide who is master: any id may be.
        if slave {
            return Err(ConfError {
                line: role_line.or(controller_line).unwrap_or(0),
                key: "brokerRole".into(),
                reason: "in controller mode the controllers choose the master: brokerRole is ASYNC_MASTER or SYNC_MASTER (how a master replicates)".into(),
            });
        }
    } else if slave == (config.broker_id == 0) {
        // A slave has an id of its own; a master is broker 0 of its group.
        let line = if slave { role_line } else { id_line }.unwrap_or(0);
        let (key, reason) = if slave {
            ("brokerRole", "SLAVE needs a brokerId of 1 or more (0 is the master's)".to_string())
        } else {
            ("brokerId", format!("brokerId {} is a slave's: set brokerRole=SLAVE, or brokerId=0 for a master", config.broker_id))
        };
        return Err(ConfError { line, key: key.into(), reason });
    }
    if listen_addr.is_some() && listen_port.is_some() {
        let (line, key) = *listen_lines.last().expect("two listen keys were seen");
        return Err(ConfError {
            line,
            key: key.to_string(),
            reason: "listenAddr and listenPort are exclusive: give one".into(),
        });
    }
    let ip = broker_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let listen_addr = listen_addr.unwrap_or_else(|| {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), listen_port.unwrap_or(LISTEN_PORT_DEFAULT))
    });
    config.advertise_addr = advertised(listen_addr, ip);
    Ok(BrokerConf { broker: config, listen_addr, store_dir, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# A broker.conf as RocketMQ users write it.
brokerClusterName = east
brokerName=broker-b
brokerId=0

brokerRole=SYNC_MASTER
namesrvAddr=10.0.0.1:9876; 10.0.0.2:9876
listenPort=10921
brokerIP1=10.0.0.7
storePathRootDir=/var/lib/mq/store
flushDiskType=SYNC_FLUSH
flushIntervalCommitLog=200
syncFlushTimeout=2000
flushIntervalConsumeQueue=700
flushConsumerOffsetInterval=1500
autoCreateTopicEnable=false
defaultTopicQueueNums=4
fileReservedTime=48
mappedFileSizeCommitLog=1048576
maxMessageSize=65536
registerNameServerPeriod=10000
longPollingMaxMs=5000
";

    #[test]
    fn good_file_sets_every_field() {
        let conf = parse(GOOD).unwrap();
        let b = &conf.broker;
        assert_eq!(b.cluster, "east");
        assert_eq!(b.broker_name, "broker-b");
        assert_eq!(b.broker_id, 0);
        assert_eq!(b.namesrv_addrs, vec!["10.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(conf.listen_addr, "0.0.0.0:10921".parse().unwrap());
        assert_eq!(b.advertise_addr, "10.0.0.7:10921");
        assert_eq!(conf.store_dir, PathBuf::from("/var/lib/mq/store"));
        assert_eq!(b.flush, FlushMode::Sync);
        assert_eq!(b.flush_interval_ms, 200);
        assert_eq!(b.sync_flush_timeout_ms, 2000);
        assert_eq!(b.checkpoint_interval_ms, 700);
        assert_eq!(b.offset_persist_interval_ms, 1500);
        assert!(!b.auto_create_topic);
        assert_eq!(b.default_topic_queues, 4);
        assert_eq!(b.store.retention_ms, 48 * 3_600_000);
        assert_eq!(b.store.segment_bytes, 1_048_576);
        assert_eq!(b.store.body_bytes_max, 65_536);
        assert_eq!(b.register_interval_ms, 10_000);
        assert_eq!(b.long_polling_max_ms, 5_000);
        assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);
        assert_eq!(conf.broker.role, ReplicationRole::SyncMaster);
    }

    /// The `broker.conf` Apache RocketMQ ships (`conf/broker.conf`) starts
    /// this broker: what it sets that this broker does not act on
    /// (`deleteWhen`: it reclaims old segments by `fileReservedTime` alone)
    /// is named in a warning.
    #[test]
    fn rocketmqs_stock_broker_conf_starts_it_with_a_warning_per_unused_key() {
        let stock = "\
brokerClusterName = DefaultCluster
brokerName = broker-a
brokerId = 0
deleteWhen = 04
fileReservedTime = 48
brokerRole = ASYNC_MASTER
flushDiskType = ASYNC_FLUSH
";
        let conf = parse(stock).unwrap();
        assert_eq!((conf.broker.cluster.as_str(), conf.broker.broker_name.as_str()), ("DefaultCluster", "broker-a"));
        assert_eq!((conf.broker.role, conf.broker.flush), (ReplicationRole::AsyncMaster, FlushMode::Async));
        assert_eq!(conf.broker.store.retention_ms, 48 * 3_600_000);
        assert_eq!(conf.warnings, ["line 4: deleteWhen: a RocketMQ setting this broker does not act on; ignored"]);
        // More of RocketMQ's own keys, each named; a key given twice is
        // still refused, warned about or not.
        let more = parse("sendMessageThreadPoolNums=16\nwaitTimeMillsInSendQueue=300\nmaxTransferCountOnMessageInMemory=64\nenablePropertyFilter=true\nclientManageThreadPoolNums=8\n").unwrap();
        assert!(more.broker.enable_property_filter);
        assert_eq!((more.broker.send_workers, more.broker.send_queue_wait_ms), (16, 300));
        assert_eq!(more.warnings.len(), 2, "{:?}", more.warnings);
        assert!(more.warnings[1].starts_with("line 5: clientManageThreadPoolNums:"), "{:?}", more.warnings);
        assert_eq!(error("deleteWhen=04\ndeleteWhen=05\n"), "line 2: deleteWhen: set twice, first on line 1");
        assert!(!is_rocketmq_key("# Every key Apache RocketMQ's broker reads from broker.conf (fields with a setter of"));
    }

    /// What `mqadmin getBrokerConfig` prints is a `broker.conf` that gives
    /// the same settings again.
    #[test]
    fn a_brokers_settings_read_back_as_a_broker_conf_are_the_same() {
        for text in [GOOD, "", "brokerId=1\nbrokerRole=SYNC_MASTER\ncontrollerAddr=10.0.0.5:9878\nenableControllerMode=true\nmessageDelayLevel=100ms 2s 1m\n", "brokerRole=SLAVE\nbrokerId=2\nhaMasterAddress=10.0.0.1:10911\n"] {
            let first = parse(text).unwrap().broker;
            let written: String = first.as_properties().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            let again = parse(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert!(again.warnings.is_empty(), "{:?}", again.warnings);
            let b = again.broker;
            assert_eq!(b.as_properties(), first.as_properties(), "{written}");
            assert_eq!((b.role, b.flush, b.broker_id, &b.controller_addrs), (first.role, first.flush, first.broker_id, &first.controller_addrs));
            assert_eq!(b.delay_levels.delays_ms(), first.delay_levels.delays_ms());
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let conf = parse("\n# nothing\n   \n").unwrap();
        let defaults = BrokerConfig::new("broker-a", "127.0.0.1:10911");
        assert_eq!(conf.broker.broker_name, defaults.broker_name);
        assert_eq!(conf.broker.advertise_addr, defaults.advertise_addr);
        assert_eq!(conf.broker.flush, FlushMode::Async);
        assert_eq!(conf.listen_addr, "0.0.0.0:10911".parse().unwrap());
        assert_eq!(conf.store_dir, PathBuf::from("store"));
        assert!(conf.broker.namesrv_addrs.is_empty());
        assert!(conf.warnings.is_empty());
    }

    #[test]
    fn listen_addr_is_listened_on_and_advertised() {
        let mut conf = parse("listenAddr=127.0.0.1:4000\n").unwrap();
        assert_eq!(conf.listen_addr, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(conf.broker.advertise_addr, "127.0.0.1:4000");
        conf.set_listen_addr("0.0.0.0:5000".parse().unwrap());
        assert_eq!(conf.broker.advertise_addr, "127.0.0.1:5000");
        conf.set_listen_addr("127.0.0.2:6000".parse().unwrap());
        assert_eq!(conf.broker.advertise_addr, "127.0.0.2:6000");
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_name_the_line_and_key() {
        assert_eq!(
            error("brokerName=a\n\n#c\n\n\n\nflushDiskType=SYNC\n"),
            r#"line 7: flushDiskType: expected SYNC_FLUSH or ASYNC_FLUSH, got "SYNC""#
        );
        assert_eq!(error("brokerName=a\nbrokerNam=b\n"), "line 2: brokerNam: unknown key (neither this broker's nor a RocketMQ broker's)");
        assert_eq!(error("just words\n"), "line 1: just words: expected key=value");
        assert_eq!(error("=3\n"), "line 1: =3: expected key=value, the key is empty");
        assert_eq!(error("brokerName=a\nbrokerName=b\n"), "line 2: brokerName: set twice, first on line 1");
        assert_eq!(error("brokerId=1\n"), "line 1: brokerId: brokerId 1 is a slave's: set brokerRole=SLAVE, or brokerId=0 for a master");
        assert_eq!(error("brokerRole=SLAVE\n"), "line 1: brokerRole: SLAVE needs a brokerId of 1 or more (0 is the master's)");
        let slave = parse("brokerRole=SLAVE\nbrokerId=2\nhaMasterAddress=10.0.0.1:10911\nslaveTimeout=1500\n").unwrap().broker;
        assert_eq!((slave.role, slave.broker_id, slave.ha_master_addr.as_deref(), slave.slave_timeout_ms), (ReplicationRole::Slave, 2, Some("10.0.0.1:10911"), 1_500));
        assert!(error("haMasterAddress=nowhere\n").starts_with("line 1: haMasterAddress: expected ip:port"));
        let controlled = parse("brokerId=1\nbrokerRole=SYNC_MASTER\ncontrollerAddr=10.0.0.5:9878;10.0.0.6:9878\nenableControllerMode=true\nhaMaxTimeSlaveNotCatchup=4000\ncontrollerHeartbeatInterval=500\n").unwrap().broker;
        assert_eq!(controlled.controller_addrs, ["10.0.0.5:9878", "10.0.0.6:9878"]);
        assert_eq!((controlled.broker_id, controlled.ha_max_time_slave_not_catchup_ms, controlled.controller_heartbeat_ms), (1, 4_000, 500));
        assert!(error("controllerAddr=10.0.0.5:9878\nbrokerId=1\nbrokerRole=SLAVE\n").contains("the controllers choose the master"));
        assert_eq!(error("enableControllerMode=true\n"), "line 1: enableControllerMode: true needs controllerAddr");
        assert!(error("controllerAddr=x\n").starts_with("line 1: controllerAddr: expected host:port"));
        assert!(error("brokerRole=MASTER\n").starts_with("line 1: brokerRole: expected"));
        assert_eq!(error("autoCreateTopicEnable=yes\n"), r#"line 1: autoCreateTopicEnable: expected true or false, got "yes""#);
        assert!(error("listenPort=70000\n").starts_with("line 1: listenPort: expected a port number"));
        assert!(error("brokerIP1=localhost\n").starts_with("line 1: brokerIP1: expected an IP address"));
        assert!(error("listenAddr=127.0.0.1\n").starts_with("line 1: listenAddr: expected ip:port"));
        assert!(error("namesrvAddr=a;b:x\n").starts_with("line 1: namesrvAddr: expected host:port"));
        assert!(error("namesrvAddr= ; \n").starts_with("line 1: namesrvAddr: expected at least one"));
        assert!(error("flushIntervalCommitLog=0\n").starts_with("line 1: flushIntervalCommitLog: expected a positive"));
        assert!(error("fileReservedTime=-1\n").starts_with("line 1: fileReservedTime: expected a non-negative"));
        assert!(error("brokerName=bad name\n").starts_with("line 1: brokerName: broker name"));
        let tx = parse("transactionTimeOut=500\ntransactionCheckInterval=300\ntransactionCheckMax=4\ntimerMaxDelaySec=60\n").unwrap().broker;
        assert_eq!(
            (tx.transaction_timeout_ms, tx.transaction_check_interval_ms, tx.transaction_check_max, tx.timer_max_delay_ms),
            (500, 300, 4, 60_000)
        );
        assert!(error("transactionCheckInterval=0\n").starts_with("line 1: transactionCheckInterval: expected a positive"));
        assert!(error("transactionCheckMax=5000\n").starts_with("line 1: transactionCheckMax: expected at most 1000"));
        assert!(error("timerMaxDelaySec=x\n").starts_with("line 1: timerMaxDelaySec: expected"));
        assert_eq!(
            error("maxMessageSize=104857600\n"),
            "line 1: maxMessageSize: expected at most 4194304 (a stored entry holds at most 5 MiB with its properties), got 104857600"
        );
        assert!(error("defaultTopicQueueNums=5000\n").starts_with("line 1: defaultTopicQueueNums: expected at most 1024"));
        assert!(error("longPollingMaxMs=18446744073709551615\n").starts_with("line 1: longPollingMaxMs: expected at most 3600000"));
        assert!(error("syncFlushTimeout=99999999999\n").starts_with("line 1: syncFlushTimeout: expected at most 3600000"));
        assert_eq!(error("messageDelayLevel=1s 5\n"), r#"line 1: messageDelayLevel: delay "5" has no unit (ms, s, m, h or d)"#);
        assert_eq!(parse("messageDelayLevel=100ms 1s 2s\n").unwrap().broker.delay_levels.delays_ms(), &[100, 1_000, 2_000]);
        assert_eq!(
            error("listenAddr=127.0.0.1:1\nlistenPort=2\n"),
            "line 2: listenPort: listenAddr and listenPort are exclusive: give one"
        );
    }

    #[test]
    fn namesrv_lists() {
        assert_eq!(parse_namesrv_list("a:1;b:2;").unwrap(), vec!["a:1", "b:2"]);
        assert!(parse_namesrv_list("a").is_err());
        assert!(parse_namesrv_list(":1").is_err());
    }
}
