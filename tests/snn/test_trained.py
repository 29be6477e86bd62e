"""Exactness on a trained network: LeNet-5 trained briefly on real MNIST digits."""

import torch
import torch.nn.functional as F

import tdsnn
from tdsnn.data import load_dataset, to_float
from tdsnn.models import lenet5
from tdsnn.testing import reference_spike_times


def test_trained_lenet5_spike_times_equal_the_gdnn(one_thread):
    torch.manual_seed(0)
    train = load_dataset("mnist", "train")
    test = load_dataset("mnist", "test")
    x, y = to_float(train.images[:2048]), train.labels[:2048]
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(64):  # a few hundred milliseconds: enough to be far from random
        idx = torch.arange(step * 32, step * 32 + 32) % 2048
        loss = F.cross_entropy(model((x[idx] - 0.1307) / 0.3081), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    gdnn = tdsnn.prepare(model, L=5.0, input_mean=0.1307, input_std=0.3081, input_scale=4.0).eval()
    snn = tdsnn.convert(gdnn)
    images = to_float(test.images[:48]) * 4.0
    ref_times, ref_logits = reference_spike_times(gdnn, images)
    assert (ref_logits.argmax(1) == test.labels[:48]).float().mean() > 0.7  # it learned
    for backend in ("closed_form", "clocked"):
        result = snn.run(images, backend=backend)
        for got, want in zip(result.spike_times, ref_times):
            assert torch.equal(got.long(), want)
        torch.testing.assert_close(result.logits, ref_logits, rtol=1e-5, atol=1e-5 * float(ref_logits.abs().max()))
        assert torch.equal(result.predictions, ref_logits.argmax(1))
