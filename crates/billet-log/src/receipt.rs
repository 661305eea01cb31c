//! What a write hands back: the point each plane must reach for it to be
//! durable.

use crate::segment::PlaneKind;

/// What a caller must wait for before its blocks are durable: the LSN each
/// plane has to reach (0: nothing on that plane).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    pub data: u64,
    pub catalog: u64,
}

impl Receipt {
    pub fn merge(self, other: Receipt) -> Receipt {
        Receipt {
            data: self.data.max(other.data),
            catalog: self.catalog.max(other.catalog),
        }
    }

    pub(crate) fn for_plane(plane: PlaneKind, lsn: u64) -> Receipt {
        match plane {
            PlaneKind::Data => Receipt {
                data: lsn,
                catalog: 0,
            },
            PlaneKind::Catalog => Receipt {
                data: 0,
                catalog: lsn,
            },
        }
    }
}
