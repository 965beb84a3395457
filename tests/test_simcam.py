"""SimCam's camera from the config: the default 2x2 focal plane unchanged, any count of detectors of
any size simulated consistently (the many-detector visit itself is processed in test_slurm)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from lsst_on_aws import simulate
from lsst_on_aws_tasks import simcam


def test_default_camera_is_the_embedded_defaults_2x2():
    dets = simcam.detectors()
    assert [(d.id, d.name, d.x0, d.y0, d.nx) for d in dets] == [
        (0, "S00", -532.0, -532.0, 512),
        (1, "S01", 20.0, -532.0, 512),
        (2, "S10", -532.0, 20.0, 512),
        (3, "S11", 20.0, 20.0, 512),
    ]
    assert dets[0].datasec == "[1:512,1:512]" and dets[0].biassec == "[513:544,1:512]"


@pytest.mark.parametrize("count", [1, 2, 16, 62, 189])
def test_any_count_of_detectors_tiles_a_centred_grid_without_overlap(count):
    dets = simcam.detectors(count, 128)
    cols, rows = simcam.grid(count)
    assert len(dets) == count and cols * rows >= count > cols * (rows - 1)
    assert len({d.name for d in dets}) == count
    boxes = [(d.x0, d.y0, d.x0 + d.nx, d.y0 + d.ny) for d in dets]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    # centred on the boresight, left to right
    assert min(b[0] for b in boxes) == -max(b[2] for b in boxes[:cols])


def test_bad_cameras_are_refused():
    with pytest.raises(ValueError, match="at least 1 detector"):
        simcam.detectors(0)
    with pytest.raises(ValueError, match="64 pixels"):
        simcam.detectors(4, 32)


def test_a_nine_detector_visit_is_simulated_frame_by_frame(tmp_path):
    dets = simcam.detectors(9, 96)
    refcat = simulate.make_reference_catalog(7, 200, 10, dets)
    truth = simulate.simulate_visit(simulate.Visit(1, "r", 0.8), refcat, 7, tmp_path / "raw", dets)
    frames = sorted((tmp_path / "raw").glob("*.fits"))
    assert len(frames) == 9
    for det in dets:
        with fits.open(tmp_path / "raw" / f"raw_1_{det.name}.fits") as hdul:
            header, data = hdul[0].header, hdul[0].data
        assert data.shape == (96, 96 + simcam.OVERSCAN)
        assert header["DATASEC"] == det.datasec and header["CCDNUM"] == det.id
    assert set(truth["detector"]) <= {d.id for d in dets} and len(set(truth["detector"])) >= 5
    assert truth["x"].between(0, 95).all() and truth["y"].between(0, 95).all()
    # the reference catalogue covers the whole focal plane and its dither margin
    half = simcam.half_extent(dets) * simcam.PIXEL_SCALE / 3600
    assert np.ptp(refcat["dec"]) > 1.8 * half
