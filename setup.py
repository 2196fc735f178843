from setuptools import setup

# kernels/ and engines/ are generic names: they install inside the srgan_fast namespace so they
# cannot collide with other distributions (there is a PyPI package called "kernels").
setup(
    name="srgan_fast",
    version="0.1.0",
    description="SRGAN 4x super-resolution: reference PyTorch model, trainer, fast verified engines",
    python_requires=">=3.10",
    packages=["srgan_fast", "srgan_fast.kernels", "srgan_fast.engines"],
    package_dir={"srgan_fast": "srgan_fast", "srgan_fast.kernels": "kernels",
                 "srgan_fast.engines": "engines"},
    package_data={"srgan_fast": ["weights/*.safetensors", "weights/*.json", "weights/*.md"]},
    install_requires=[
        # Pinned: a looser torch resolves to a multi-GB CUDA build on a fresh machine.
        "torch==2.13.0",
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
        "bench": ["pytest-benchmark", "matplotlib", "psutil"],
        "test": ["pytest", "pytest-benchmark", "triton", "av", "psutil", "matplotlib"],
    },
)
