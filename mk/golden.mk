# golden: 4-bit training benchmarks (docs/golden.md).

MNIST_DIR ?= ../shared/data/mnist

.PHONY: bench-accuracy bench-train bench-gpt test-golden capture-sample

bench-accuracy:  ## golden: accuracy table, every recipe vs fp32 (MNIST + digits, MLP, LeNet-5, ResNet; hours on 2 busy cores, the block recipes most of it; cached per run)
	$(PYTHON) -m golden.bench accuracy --data-dir $(MNIST_DIR) --out build/golden/accuracy --threads 1

bench-train:  ## golden: training step time ibm4 vs fp32 on CPU, one thread (MLP, LeNet-5, ResNet, 2048-wide MLP, GPT; 60 interleaved steps, minutes)
	$(PYTHON) -m golden.bench speed --out build/golden/speed

TINYSHAKESPEARE_DIR ?= ../shared/data/tinyshakespeare
GPT_STEPS ?= 2000

bench-gpt:  ## golden: char-level GPT on Tiny Shakespeare, fp32 vs ibm4, luq, mxfp4, nvfp4 at GPT_STEPS steps (hours on 1 busy core; cached per run)
	$(PYTHON) -m golden.bench gpt --data-dir $(TINYSHAKESPEARE_DIR) --steps $(GPT_STEPS) --out build/golden/gpt --threads 1

test-golden:  ## golden: the training/layer tests only
	$(PYTHON) -m pytest -q tests/golden/test_layers_pipeline.py tests/golden/test_train_cli.py

capture-sample:  ## golden: a sample tensor capture (LeNet-5 on digits, ibm4-full, step 2) in build/golden/capture, re-verified
	$(PYTHON) -m golden.train --dataset digits --model lenet5 --recipe ibm4-full --epochs 1 --seed 0 \
	    --max-steps 3 --capture build/golden/capture/digits-lenet5-ibm4-full.npz --capture-steps 2 \
	    --metrics build/golden/capture/digits-lenet5-ibm4-full.json --progress off
	$(PYTHON) -m golden.capture verify build/golden/capture/digits-lenet5-ibm4-full.npz
