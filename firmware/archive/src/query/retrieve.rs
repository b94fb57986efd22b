//! The retrieve set of C-MOVE / C-GET: every instance under the matches of a query.

use std::ops::ControlFlow;

use super::model::{Level, Query, QueryError};
use crate::index::{INSTANCES, Index, PATIENT_STUDIES, SERIES_INSTANCES, STUDY_SERIES, dec};
use crate::record::InstanceRecord;

impl Index {
    /// Every instance under the matches of `q` (C-MOVE / C-GET): a STUDY match brings its
    /// series' instances, a SERIES match its instances.
    pub fn retrieve_set(&self, q: &Query) -> Result<Vec<(String, InstanceRecord)>, QueryError> {
        let mut rows = Vec::new();
        self.query(q, |row| {
            rows.push(row);
            ControlFlow::Continue(())
        })?;
        let txn = self.read()?;
        let study_series = txn.open_multimap_table(STUDY_SERIES)?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let instances = txn.open_table(INSTANCES)?;
        let patient_studies = txn.open_multimap_table(PATIENT_STUDIES)?;
        let mut sops: Vec<String> = Vec::new();
        let add_series = |series_uid: &str, sops: &mut Vec<String>| -> Result<(), QueryError> {
            for s in series_instances.get(series_uid)? {
                sops.push(s?.value().to_owned());
            }
            Ok(())
        };
        for row in rows {
            match q.level {
                Level::Image => sops.push(row.sop_instance_uid),
                Level::Series => add_series(&row.series_uid, &mut sops)?,
                Level::Study | Level::Patient => {
                    let studies: Vec<String> = if q.level == Level::Patient {
                        let mut v = Vec::new();
                        for s in patient_studies.get(row.patient_key.as_str())? {
                            v.push(s?.value().to_owned());
                        }
                        v
                    } else {
                        vec![row.study_uid]
                    };
                    for study in studies {
                        for series in study_series.get(study.as_str())? {
                            add_series(series?.value(), &mut sops)?;
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(sops.len());
        for sop in sops {
            if let Some(v) = instances.get(sop.as_str())? {
                out.push((sop, dec(v.value())?));
            }
        }
        Ok(out)
    }
}
