//! How results are printed: plain-text tables with a fixed column order.

use broker::command::SendStatus;
use broker::model::MessageExt;

/// Where a reset put each queue.
pub(crate) fn print_resets(resets: Vec<(String, broker::command::QueueReset)>) {
    let mut table = Table::new(&["BROKER", "QUEUE", "CONSUMER_OFFSET", "GENERATION"]);
    for (broker, r) in resets {
        table.row(vec![broker, r.queue_id.to_string(), r.offset.to_string(), r.generation.to_string()]);
    }
    table.print();
}

pub(crate) fn status_name(status: SendStatus) -> &'static str {
    match status {
        SendStatus::SendOk => "SEND_OK",
        SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
        SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
    }
}

pub(crate) fn body_text(m: &MessageExt) -> String {
    String::from_utf8_lossy(&m.message.body).into_owned()
}

pub(crate) fn shorten(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(chars_max).collect();
    out.push_str("...");
    out
}

pub(crate) fn print_message(m: &MessageExt) {
    let props: Vec<String> = m.message.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let fields = [
        ("Topic", m.message.topic.clone()),
        ("Tags", m.message.tags.clone().unwrap_or_default()),
        ("Keys", m.message.keys.join(",")),
        ("Msg ID", m.msg_id()),
        ("Offset Msg ID", m.offset_msg_id()),
        ("Broker", m.broker_name.clone()),
        ("Queue ID", m.queue_id.to_string()),
        ("Queue Offset", m.queue_offset.to_string()),
        ("CommitLog Offset", m.commit_log_offset.to_string()),
        ("Store Size", m.store_size.to_string()),
        ("Born Timestamp ms", m.born_timestamp_ms.to_string()),
        ("Store Timestamp ms", m.store_timestamp_ms.to_string()),
        ("Born Host", m.born_host.clone()),
        ("Store Host", m.store_host.clone()),
        ("Reconsume Times", m.reconsume_times.to_string()),
        ("Properties", props.join(", ")),
        ("Body", body_text(m)),
    ];
    for (name, value) in fields {
        println!("{:<20}{value}", format!("{name}:"));
    }
}

/// A plain-text table: left-aligned columns two spaces apart.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub(crate) fn row(&mut self, row: Vec<String>) {
        assert_eq!(row.len(), self.header.len(), "a row has one cell per column");
        self.rows.push(row);
    }

    pub(crate) fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            println!("{}", line.join("  ").trim_end());
        }
    }
}


/// Messages as one table row each.
pub(crate) fn print_message_rows(found: Vec<MessageExt>) {
    let mut table = Table::new(&["MSG_ID", "OFFSET_MSG_ID", "BROKER", "QUEUE", "QUEUE_OFFSET", "STORE_TIME_MS", "TAGS", "KEYS", "BODY"]);
    for m in found {
        table.row(vec![
            m.msg_id(),
            m.offset_msg_id(),
            m.broker_name.clone(),
            m.queue_id.to_string(),
            m.queue_offset.to_string(),
            m.store_timestamp_ms.to_string(),
            m.message.tags.clone().unwrap_or_default(),
            m.message.keys.join(","),
            shorten(&body_text(&m), 60),
        ]);
    }
    table.print();
}
