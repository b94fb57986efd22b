//! Where an image's pixels are in the patient: the pixel size for measurements and the
//! direction of rows and columns for orientation markers, plus the unit of the modality values
//! (an ROI's mean is in HU for a CT).
//!
//! Read from the top level, or for enhanced multi-frame objects from the Shared Functional
//! Groups (per-frame groups are not read: a viewer measuring a frame whose spacing differs from
//! the shared one would need them, and our corpus has none).

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use serde::Serialize;

/// Which attribute gave the pixel spacing, because it changes what a millimetre means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpacingSource {
    /// Pixel Spacing (0028,0030): in the patient (cross-sectional images, calibrated X-ray).
    Patient,
    /// Imager Pixel Spacing (0018,1164) only: at the detector, so a projection radiograph's
    /// lengths are magnified by the beam's divergence; the viewer marks them as such.
    Detector,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Geometry {
    /// Row spacing (between row centres, i.e. vertical), column spacing (horizontal), mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub spacing_source: Option<SpacingSource>,
    /// Image Orientation (Patient): direction cosines of the first row, then the first column.
    pub image_orientation: Option<[f64; 6]>,
    /// Patient Orientation (0020,0020), e.g. `["A", "F"]`, for projection images without the
    /// above.
    pub patient_orientation: Option<[String; 2]>,
    /// The unit of the modality values: Rescale Type when given, HU for CT.
    pub value_unit: Option<String>,
}

impl Geometry {
    pub fn of(obj: &DefaultDicomObject) -> Geometry {
        let top: &InMemDicomObject = obj;
        let shared = first_item(top, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let in_group = |group: Tag, tag: Tag| {
            shared
                .and_then(|s| first_item(s, group))
                .map(|g| floats(g, tag))
                .unwrap_or_default()
        };
        let spacing_of = |v: Vec<f64>| -> Option<[f64; 2]> {
            match v[..] {
                [r, c, ..] if r > 0.0 && c > 0.0 && r.is_finite() && c.is_finite() => Some([r, c]),
                _ => None,
            }
        };
        let (pixel_spacing, spacing_source) = if let Some(s) =
            spacing_of(floats(top, tags::PIXEL_SPACING)).or_else(|| {
                spacing_of(in_group(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING))
            }) {
            (Some(s), Some(SpacingSource::Patient))
        } else if let Some(s) = spacing_of(floats(top, tags::IMAGER_PIXEL_SPACING)) {
            (Some(s), Some(SpacingSource::Detector))
        } else {
            (None, None)
        };
        let orientation_of = |v: Vec<f64>| -> Option<[f64; 6]> {
            let a: [f64; 6] = v.get(..6)?.try_into().ok()?;
            let norm = |x: &[f64]| x.iter().map(|c| c * c).sum::<f64>().sqrt();
            // a degenerate vector would give markers that mean nothing
            (a.iter().all(|c| c.is_finite()) && norm(&a[..3]) > 0.5 && norm(&a[3..]) > 0.5)
                .then_some(a)
        };
        let image_orientation = orientation_of(floats(top, tags::IMAGE_ORIENTATION_PATIENT))
            .or_else(|| {
                orientation_of(in_group(
                    tags::PLANE_ORIENTATION_SEQUENCE,
                    tags::IMAGE_ORIENTATION_PATIENT,
                ))
            });
        let patient_orientation = strings(top, tags::PATIENT_ORIENTATION).and_then(|v| {
            let valid = |s: &String| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| matches!(c, 'A' | 'P' | 'L' | 'R' | 'H' | 'F'))
            };
            match &v[..] {
                [r, c, ..] if valid(r) && valid(c) => Some([r.clone(), c.clone()]),
                _ => None,
            }
        });
        let rescale_type = text(top, tags::RESCALE_TYPE);
        let value_unit = match rescale_type.as_deref() {
            Some("US") | None => {
                (text(top, tags::MODALITY).as_deref() == Some("CT")).then(|| "HU".to_string())
            }
            Some(t) => Some(t.to_string()),
        };
        Geometry {
            pixel_spacing,
            spacing_source,
            image_orientation,
            patient_orientation,
            value_unit,
        }
    }
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag).and_then(|e| e.items()).and_then(|i| i.first())
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Vec<f64> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .unwrap_or_default()
}

fn strings(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<String>> {
    obj.get(tag)
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| v.iter().map(|s| s.trim().to_ascii_uppercase()).collect())
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
    use dicom_object::meta::FileMetaTableBuilder;

    fn file(elements: Vec<DataElement<InMemDicomObject>>) -> DefaultDicomObject {
        let obj = InMemDicomObject::from_element_iter(elements);
        obj.with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                .media_storage_sop_instance_uid("1.2.3"),
        )
        .expect("meta")
    }

    #[test]
    fn ct_spacing_orientation_and_hounsfield() {
        let g = Geometry::of(&file(vec![
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
            DataElement::new(
                tags::PIXEL_SPACING,
                VR::DS,
                dicom_value!(Strs, ["0.5", "0.7"]),
            ),
            DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                dicom_value!(Strs, ["1", "0", "0", "0", "1", "0"]),
            ),
        ]));
        assert_eq!(g.pixel_spacing, Some([0.5, 0.7]));
        assert_eq!(g.spacing_source, Some(SpacingSource::Patient));
        assert_eq!(g.image_orientation, Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
        assert_eq!(g.value_unit.as_deref(), Some("HU"));
    }

    #[test]
    fn radiograph_at_the_detector_with_patient_orientation() {
        let g = Geometry::of(&file(vec![
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CR")),
            DataElement::new(
                tags::PATIENT_ORIENTATION,
                VR::CS,
                dicom_value!(Strs, ["A", "f"]),
            ),
            DataElement::new(
                tags::IMAGER_PIXEL_SPACING,
                VR::DS,
                dicom_value!(Strs, ["0.1", "0.1"]),
            ),
        ]));
        assert_eq!(g.spacing_source, Some(SpacingSource::Detector));
        assert_eq!(g.patient_orientation, Some(["A".into(), "F".into()]));
        assert_eq!(g.value_unit, None);
    }

    #[test]
    fn nonsense_is_left_out() {
        let g = Geometry::of(&file(vec![
            DataElement::new(
                tags::PIXEL_SPACING,
                VR::DS,
                dicom_value!(Strs, ["0", "0.5"]),
            ),
            DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                dicom_value!(Strs, ["0", "0", "0", "0", "1", "0"]),
            ),
            DataElement::new(
                tags::PATIENT_ORIENTATION,
                VR::CS,
                dicom_value!(Strs, ["X", "F"]),
            ),
        ]));
        assert_eq!(g, Geometry::default());
    }
}
