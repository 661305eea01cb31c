//! The form of a browser upload, read up to its file: at most
//! [`MAX_FIELDS`] fields of at most [`MAX_FIELD_BYTES`] each, and no byte
//! of the file, so that nothing unauthenticated is buffered beyond a
//! small bound.

use bytes::Bytes;
use futures_util::Stream;
use multer::{Constraints, Field, Multipart, SizeLimit};
use s3s::{S3Error, S3Result, s3_error};

/// Fields before the file, at most.
pub const MAX_FIELDS: usize = 64;
/// Bytes of one field's value, at most.
pub const MAX_FIELD_BYTES: u64 = 20 * 1024;
/// Bytes of all fields together, at most.
pub const MAX_FIELDS_BYTES: usize = 256 * 1024;

/// The fields (names lower-case, as AWS compares them) and the file field,
/// not yet read.
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub file: Field<'static>,
    pub filename: Option<String>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn malformed(e: multer::Error) -> S3Error {
    match e {
        multer::Error::FieldSizeExceeded { field_name, .. } => s3_error!(
            MaxPostPreDataLengthExceededError,
            "Your POST request fields preceeding the upload file were too large ({})",
            field_name.unwrap_or_default()
        ),
        other => s3_error!(
            MalformedPOSTRequest,
            "The body of your POST request is not well-formed multipart/form-data: {other}"
        ),
    }
}

/// Reads the form up to its file field.
pub async fn read<S, E>(content_type: &str, body: S) -> S3Result<Form>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        s3_error!(
            MalformedPOSTRequest,
            "The body of your POST request is not well-formed multipart/form-data: no boundary"
        )
    })?;
    let limits = SizeLimit::new()
        .per_field(MAX_FIELD_BYTES)
        .for_field("file", u64::MAX)
        .for_field("File", u64::MAX);
    let mut mp = Multipart::with_constraints(body, boundary, Constraints::new().size_limit(limits));
    let mut fields = Vec::new();
    let mut total = 0usize;
    loop {
        let Some(field) = mp.next_field().await.map_err(malformed)? else {
            return Err(s3_error!(
                IncorrectNumberOfFilesInPostRequest,
                "POST requires exactly one file upload per request."
            ));
        };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            let filename = field.file_name().map(str::to_string);
            return Ok(Form {
                fields,
                file: field,
                filename,
            });
        }
        if fields.len() >= MAX_FIELDS {
            return Err(s3_error!(
                MaxPostPreDataLengthExceededError,
                "Your POST request holds more than {MAX_FIELDS} fields before the file"
            ));
        }
        let value = field.text().await.map_err(malformed)?;
        total += name.len() + value.len();
        if total > MAX_FIELDS_BYTES {
            return Err(s3_error!(
                MaxPostPreDataLengthExceededError,
                "Your POST request fields preceeding the upload file were too large."
            ));
        }
        fields.push((name, value));
    }
}
