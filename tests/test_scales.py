import pytest
import torch
from torch import nn

import tdsnn
from tdsnn.scales import calibrate_activation_scales


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3),
    ).eval()


def test_scales_map_the_percentile_to_the_target_and_keep_the_function():
    model = _model()
    data = torch.rand(400, 1, 8, 8) * 3
    scales = calibrate_activation_scales(model, data, target=20.0, percentile=99.0)
    assert len(scales) == 4 and scales[1] == 1.0  # the average pool has no weights
    gdnn = tdsnn.prepare(model, activation_scales=scales, compensate=False)
    plain = nn.Sequential(*[nn.Identity() if isinstance(m, tdsnn.GCoding) else m for m in gdnn])
    torch.testing.assert_close(plain(data), model(data), rtol=1e-4, atol=1e-4)
    hidden = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: hidden.append(o)) for m in plain if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        plain(data)
    for h in hooks:
        h.remove()
    for k in (0, 2, 3):
        assert float(torch.quantile(hidden[k].flatten(), 0.99)) == pytest.approx(20.0, rel=0.05)


def test_scales_help_g_resolve_small_activations():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 5)).eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(0.05)  # tiny activations: G's first levels swamp them
    x = torch.rand(512, 20)
    target = model(x)
    plain = tdsnn.prepare(model, L=5.0)(x)
    scaled = tdsnn.prepare(model, L=5.0, activation_scales=calibrate_activation_scales(model, x))(x)
    assert (scaled - target).abs().mean() < 0.5 * (plain - target).abs().mean()


def test_bad_arguments():
    with pytest.raises(ValueError, match="percentile"):
        calibrate_activation_scales(_model(), torch.rand(2, 1, 8, 8), percentile=0)
    with pytest.raises(ValueError, match="target"):
        calibrate_activation_scales(_model(), torch.rand(2, 1, 8, 8), target=-1)
    with pytest.raises(ValueError, match="empty"):
        calibrate_activation_scales(_model(), [])
