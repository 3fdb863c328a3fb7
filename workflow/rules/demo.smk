DEMO = config["demo"]
DEMO_DIR = f"{RESULTS}/demo"


rule write_demo_dataset:
    input:
        lib=lib("write_demo_dataset.py"),
    output:
        train=directory(f"{DEMO_DIR}/digits/train"),
        test=directory(f"{DEMO_DIR}/digits/test"),
    log:
        f"{RESULTS}/logs/write_demo_dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/write_demo_dataset.tsv"
    conda:
        "../../envs/torch.yaml"
    params:
        size=DEMO["image_size"],
        test_size=DEMO["test_size"],
        seed=DEMO["seed"],
    script:
        "../scripts/write_demo_dataset.py"


rule train_demo_model:
    input:
        train=rules.write_demo_dataset.output.train,
        lib=lib("train_demo_model.py"),
    output:
        checkpoints=[
            f"{DEMO_DIR}/checkpoints/step{step:04d}.pt" for step in DEMO["steps"]
        ],
    log:
        f"{RESULTS}/logs/train_demo_model.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_demo_model.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    params:
        steps=DEMO["steps"],
        batch_size=DEMO["batch_size"],
        lr=DEMO["lr"],
        seed=DEMO["seed"],
        size=DEMO["image_size"],
        device=config["extract"]["device"],
    script:
        "../scripts/train_demo_model.py"
