"""Write scikit-learn's bundled digits (1,797 real 8×8 images) as an .npz petri reads, and as PNG folders.

    python make_digits.py            # digits.npz and digits-png/{train,test}/<digit>/<index>.png here
    petri run study.toml             # an mlp and a small CNN on your own data

Any .npz with x_train, y_train, x_test, y_test (and optionally classes) works the same way.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

here = Path(__file__).parent
d = load_digits()
x = np.rint(d.images / 16 * 255).astype(np.uint8)  # the set's 0..16 intensities as 0..255
y = d.target
split = 1500
np.savez(here / "digits.npz", x_train=x[:split], y_train=y[:split], x_test=x[split:], y_test=y[split:],
         classes=np.array([str(i) for i in range(10)]))
for name, xs, ys, offset in (("train", x[:split], y[:split], 0), ("test", x[split:], y[split:], split)):
    for i, (img, label) in enumerate(zip(xs, ys)):
        folder = here / "digits-png" / name / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(folder / f"{offset + i:05d}.png")
print(f"wrote {here / 'digits.npz'} and {here / 'digits-png'}: {split} training and {len(y) - split} test images")
