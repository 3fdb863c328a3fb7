DEMO = P.demo.config


rule write_demo_dataset:
    input:
        lib=lib("write_demo_dataset.py"),
    output:
        train=directory(P.demo.out("train")),
        test=directory(P.demo.out("test")),
    log:
        P.demo.log("write_demo_dataset"),
    benchmark:
        P.demo.benchmark("write_demo_dataset")
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
        checkpoints=P.demo.checkpoints(),
    log:
        P.demo.log("train_demo_model"),
    benchmark:
        P.demo.benchmark("train_demo_model")
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
