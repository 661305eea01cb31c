use billet_block::DagCborError;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{record}: {source}")]
    Cbor {
        record: &'static str,
        #[source]
        source: DagCborError,
    },
    #[error("{record} field `{field}`: {reason}")]
    Invalid {
        record: &'static str,
        field: &'static str,
        reason: String,
    },
}

pub(crate) fn invalid(
    record: &'static str,
    field: &'static str,
    reason: impl Into<String>,
) -> RecordError {
    RecordError::Invalid {
        record,
        field,
        reason: reason.into(),
    }
}
