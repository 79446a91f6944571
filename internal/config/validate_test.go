package config_test

import (
	"errors"
	"math"
	"testing"

	"resnet/internal/config"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   string // "" means valid
	}{
		{"defaults", func(c *config.Config) {}, ""},
		{"empty name", func(c *config.Config) { c.Name = "" },
			"config: name must not be empty (it names the run directory runs/<name>)"},
		{"device", func(c *config.Config) { c.Device = "gpu" },
			`config: device must be one of auto, cpu, cuda (got "gpu")`},

		{"resnet152", func(c *config.Config) { c.Model.Arch = "resnet152" }, ""},
		{"plain34", func(c *config.Config) { c.Model.Arch = "plain34" }, ""},
		{"cifar_resnet8", func(c *config.Config) { c.Model.Arch = "cifar_resnet8" }, ""},
		{"cifar_plain1202", func(c *config.Config) { c.Model.Arch = "cifar_plain1202" }, ""},
		{"cifar_resnet with depth", func(c *config.Config) { c.Model.Arch, c.Model.Depth = "cifar_resnet", 56 }, ""},
		{"cifar_resnet20 with depth", func(c *config.Config) { c.Model.Depth = 110 }, ""},
		{"short name", func(c *config.Config) { c.Model.Arch = "res50" }, ""},
		{"paper spelling", func(c *config.Config) { c.Model.Arch = "ResNet-34" }, ""},
		{"cifar short name", func(c *config.Config) { c.Model.Arch = "cifar_res56" }, ""},
		{"imagenet depth override", func(c *config.Config) { c.Model.Arch, c.Model.Depth = "resnet50", 101 }, ""},
		{"imagenet family with depth", func(c *config.Config) { c.Model.Arch, c.Model.Depth = "plain", 34 }, ""},
		{"unknown arch", func(c *config.Config) { c.Model.Arch = "vgg16" },
			`config: model.arch must be a known architecture (got "vgg16"; known: resnet18/34/50/101/152, plain18/34/50/101/152, cifar_resnetN, cifar_plainN with N = 6n+2 (20, 32, 44, 56, 110, ...), resnext50_32x4d/101_32x8d/101_64x4d, wide_resnet50_2/101_2, cifar_resnext29_8x64d/29_16x64d, resnetv2_50/101, cifar_preact_resnetN with N = 6n+2 below 164, 9n+2 from 164, cifar_wrnN_K with N = 6n+4 and K the width factor, seresnet50/101/152, seresnext50_32x4d, densenet121/161/169/201, cifar_densenet_bcN_kK with N = 6n+4 and K the growth rate, inception_resnet_v2; or a name without its depth together with model.depth)`},
		{"typo", func(c *config.Config) { c.Model.Arch = "resnt50" },
			`config: model.arch must be a known architecture (got "resnt50"; known: resnet18/34/50/101/152, plain18/34/50/101/152, cifar_resnetN, cifar_plainN with N = 6n+2 (20, 32, 44, 56, 110, ...), resnext50_32x4d/101_32x8d/101_64x4d, wide_resnet50_2/101_2, cifar_resnext29_8x64d/29_16x64d, resnetv2_50/101, cifar_preact_resnetN with N = 6n+2 below 164, 9n+2 from 164, cifar_wrnN_K with N = 6n+4 and K the width factor, seresnet50/101/152, seresnext50_32x4d, densenet121/161/169/201, cifar_densenet_bcN_kK with N = 6n+4 and K the growth rate, inception_resnet_v2; or a name without its depth together with model.depth); did you mean resnet50?`},
		{"imagenet depth in name", func(c *config.Config) { c.Model.Arch = "resnet51" },
			`config: model.arch depth must be one of 18, 34, 50, 101, 152 (got "resnet51"); did you mean resnet50?`},
		{"leading zero", func(c *config.Config) { c.Model.Arch = "cifar_resnet020" },
			`config: model.arch must be a known architecture (got "cifar_resnet020"; known: resnet18/34/50/101/152, plain18/34/50/101/152, cifar_resnetN, cifar_plainN with N = 6n+2 (20, 32, 44, 56, 110, ...), resnext50_32x4d/101_32x8d/101_64x4d, wide_resnet50_2/101_2, cifar_resnext29_8x64d/29_16x64d, resnetv2_50/101, cifar_preact_resnetN with N = 6n+2 below 164, 9n+2 from 164, cifar_wrnN_K with N = 6n+4 and K the width factor, seresnet50/101/152, seresnext50_32x4d, densenet121/161/169/201, cifar_densenet_bcN_kK with N = 6n+4 and K the growth rate, inception_resnet_v2; or a name without its depth together with model.depth); did you mean cifar_resnet20?`},
		{"cifar depth in name", func(c *config.Config) { c.Model.Arch = "cifar_plain21" },
			`config: model.arch depth must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...) (got "cifar_plain21"); did you mean cifar_plain20?`},
		{"cifar depth too small", func(c *config.Config) { c.Model.Arch = "cifar_resnet2" },
			`config: model.arch depth must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...) (got "cifar_resnet2"); did you mean cifar_resnet8?`},
		{"cifar without depth", func(c *config.Config) { c.Model.Arch = "cifar_plain" },
			`config: model.depth must be set to 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...) when model.arch is cifar_plain`},
		{"bad depth", func(c *config.Config) { c.Model.Arch, c.Model.Depth = "cifar_resnet", 21 },
			`config: model.depth must be 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...) for cifar_resnet, or 0 for the arch's own (got 21); did you mean 20?`},
		{"inception_resnet_v2", func(c *config.Config) { c.Model.Arch = "Inception-ResNet-v2" }, ""},
		{"depth on a name without one", func(c *config.Config) { c.Model.Arch, c.Model.Depth = "inception_resnet_v2", 50 },
			`config: model.depth must be 0 for inception_resnet_v2, whose name carries no depth (got 50)`},
		{"bad depth on imagenet arch", func(c *config.Config) { c.Model.Arch, c.Model.Depth = "resnet50", 56 },
			`config: model.depth must be one of 18, 34, 50, 101, 152 for resnet, or 0 for the arch's own (got 56); did you mean 50?`},
		{"shortcut", func(c *config.Config) { c.Model.Shortcut = "D" },
			`config: model.shortcut must be one of A, B, C (got "D")`},
		{"shortcut B", func(c *config.Config) { c.Model.Shortcut = "B" }, ""},
		{"num classes", func(c *config.Config) { c.Model.NumClasses = -1 },
			`config: model.num_classes must be >= 0 (0 takes the dataset's) (got -1)`},
		{"wide resnet with dropout", func(c *config.Config) { c.Model.Arch, c.Model.Dropout = "cifar_wrn16_4", 0.3 }, ""},
		{"dropout 1", func(c *config.Config) { c.Model.Arch, c.Model.Dropout = "cifar_wrn28_10", 1 },
			`config: model.dropout must be >= 0 and < 1 (the probability of dropping an element; 0 drops nothing) (got 1)`},
		{"negative dropout", func(c *config.Config) { c.Model.Dropout = -0.1 },
			`config: model.dropout must be >= 0 and < 1 (the probability of dropping an element; 0 drops nothing) (got -0.1)`},
		{"dropout without a place", func(c *config.Config) { c.Model.Dropout = 0.3 },
			`config: model.dropout needs pre-activation basic units (cifar_wrn, cifar_preact_resnet below 164), and cifar_resnet20 has none: set model.dropout: 0 (got 0.3)`},
		{"dropout with graphs", func(c *config.Config) {
			c.Model.Arch, c.Model.Dropout, c.Device, c.CUDA.Graphs = "cifar_wrn28_10", 0.3, "cuda", true
		}, `config: cuda.graphs true cannot run model.dropout: a replayed step would repeat the recorded step's dropout masks; set cuda.graphs: false, or model.dropout: 0`},

		{"dataset", func(c *config.Config) { c.Dataset.Name = "mnist" },
			`config: dataset.name must be one of synthetic, cifar10, cifar100, imagenet (got "mnist")`},
		{"root", func(c *config.Config) { c.Dataset.Name = "imagenet" },
			`config: dataset.root must be set for dataset.name imagenet (the directory that holds the data)`},
		{"root given", func(c *config.Config) { c.Dataset.Name, c.Dataset.Root = "cifar100", "d" }, ""},
		{"synthetic size", func(c *config.Config) { c.Dataset.TrainSize = 0 },
			`config: dataset.train_size must be > 0 (got 0)`},
		{"file-backed ignores sizes", func(c *config.Config) {
			c.Dataset.Name, c.Dataset.Root, c.Dataset.TestSize = "cifar10", "d", 0
		}, ""},
		{"workers", func(c *config.Config) { c.Dataset.Workers = -1 },
			`config: dataset.workers must be >= 0 (0 means one per CPU) (got -1)`},
		{"target error", func(c *config.Config) { c.Train.TargetErr = 0.07 }, ""},
		{"torchvision's augmentation", func(c *config.Config) { c.Dataset.AutoAugment, c.Dataset.RandomErasing = "rand-m9-n2", 0.25 }, ""},
		{"trivial augment", func(c *config.Config) { c.Dataset.AutoAugment = "trivial" }, ""},
		{"unknown policy", func(c *config.Config) { c.Dataset.AutoAugment = "ra" },
			`config: dataset.auto_augment must be one of none, rand-m<M>-n<N> (RandAugment: magnitude M in [0, 30], N ops an image; e.g. rand-m9-n2), trivial (TrivialAugmentWide), autoaugment-imagenet or autoaugment-cifar10 (AutoAugment's learned policies) (got "ra")`},
		{"RandAugment magnitude", func(c *config.Config) { c.Dataset.AutoAugment = "rand-m31-n2" },
			`config: dataset.auto_augment must have its RandAugment magnitude M in [0, 30], a bin of 31 (got "rand-m31-n2")`},
		{"RandAugment ops", func(c *config.Config) { c.Dataset.AutoAugment = "rand-m9-n0" },
			`config: dataset.auto_augment must have N >= 1 RandAugment ops an image (got "rand-m9-n0")`},
		{"erasing probability", func(c *config.Config) { c.Dataset.RandomErasing = 1.5 },
			`config: dataset.random_erasing must be in [0, 1], the probability of erasing a box of a training image (0 turns it off) (got 1.5)`},
		{"modern recipe", func(c *config.Config) {
			c.Train.LabelSmoothing, c.Train.MixupAlpha, c.Train.CutMixAlpha, c.Train.MixProb = 0.1, 0.2, 1, 0.5
		}, ""},
		{"label smoothing of one", func(c *config.Config) { c.Train.LabelSmoothing = 1 },
			"config: train.label_smoothing must be in [0, 1) (0.1 is the usual; 0 turns it off) (got 1)"},
		{"negative mixup alpha", func(c *config.Config) { c.Train.MixupAlpha = -0.2 },
			"config: train.mixup_alpha must be >= 0, the Beta(alpha, alpha) parameter (0 turns it off) (got -0.2)"},
		{"NaN cutmix alpha", func(c *config.Config) { c.Train.CutMixAlpha = math.NaN() },
			"config: train.cutmix_alpha must be a finite number (got NaN)"},
		{"ema decay of one", func(c *config.Config) { c.Train.EMADecay = 1 },
			"config: train.ema_decay must be in [0, 1) (0.9998 is typical; 0 turns the average off) (got 1)"},
		{"ema every zero", func(c *config.Config) { c.Train.EMADecay, c.Train.EMAEvery = 0.999, 0 },
			"config: train.ema_every must be >= 1, the steps between updates of the average (got 0)"},
		{"accumulation", func(c *config.Config) { c.Train.BatchSize, c.Train.AccumulateSteps = 256, 4 }, ""},
		{"accumulation of uneven micro-batches", func(c *config.Config) { c.Train.BatchSize, c.Train.AccumulateSteps = 256, 3 },
			"config: train.accumulate_steps must divide train.batch_size 256 into equal micro-batches (got 3)"},
		{"no accumulation steps", func(c *config.Config) { c.Train.AccumulateSteps = 0 },
			"config: train.accumulate_steps must be >= 1 (1: no accumulation) (got 0)"},
		{"warm-up start of one", func(c *config.Config) { c.Train.Schedule.WarmupStart = 1 },
			"config: train.schedule.warmup_start must be in [0, 1), the warm-up's first rate as a fraction of train.lr (got 1)"},
		{"mix probability over one", func(c *config.Config) { c.Train.MixProb = 1.5 },
			"config: train.mix_prob must be in [0, 1], the share of batches mixed (got 1.5)"},
		{"target error in percent", func(c *config.Config) { c.Train.TargetErr = 7 },
			"config: train.target_err must be in [0, 1), a fraction (0.07 is 7%; 0 trains every epoch) (got 7)"},
		{"torchvision normalisation", func(c *config.Config) {
			c.Dataset.Mean, c.Dataset.Std, c.Dataset.NormScale = []float64{0.485, 0.456, 0.406}, []float64{0.229, 0.224, 0.225}, 1
		}, ""},
		{"pixel normalisation", func(c *config.Config) {
			c.Dataset.Mean, c.Dataset.Std = []float64{125.3, 123, 113.9}, []float64{63, 62.1, 66.7}
		}, ""},
		{"0..1 constants in the pixel scale", func(c *config.Config) {
			c.Dataset.Mean, c.Dataset.Std = []float64{0.485, 0.456, 0.406}, []float64{0.229, 0.224, 0.225}
		}, "config: dataset.std and dataset.mean look like torchvision's 0..1 constants, but dataset.norm_scale is 255 (pixel values); set dataset.norm_scale: 1 (got [0.229, 0.224, 0.225])"},
		{"pixel means in the 0..1 scale", func(c *config.Config) {
			c.Dataset.Mean, c.Dataset.Std, c.Dataset.NormScale = []float64{125.3, 0.4, 0.4}, []float64{63, 0.2, 0.2}, 1
		}, "config: dataset.mean[0] must be in [0, 1], the scale dataset.norm_scale says; for values in pixels 0..255 set dataset.norm_scale: 255 (got 125.3)"},
		{"mean without std", func(c *config.Config) { c.Dataset.Mean = []float64{125, 123, 114} },
			"config: dataset.mean and dataset.std must be set together (or neither, for the data set's own normalisation)"},
		{"two channels", func(c *config.Config) { c.Dataset.Mean, c.Dataset.Std = []float64{125, 123}, []float64{63, 62} },
			"config: dataset.mean must have one value per input channel, 3 (got [125, 123])"},
		{"zero std", func(c *config.Config) { c.Dataset.Mean, c.Dataset.Std = []float64{125, 123, 114}, []float64{63, 0, 66} },
			"config: dataset.std[1] must be > 0 (got 0)"},
		{"norm scale", func(c *config.Config) { c.Dataset.NormScale = 100 },
			"config: dataset.norm_scale must be 255 (dataset.mean and dataset.std in pixel values 0..255) or 1 (in 0..1, as torchvision writes them) (got 100)"},

		{"batch", func(c *config.Config) { c.Train.BatchSize = -3 }, `config: train.batch_size must be > 0 (got -3)`},
		{"epochs", func(c *config.Config) { c.Train.Epochs = 0 }, `config: train.epochs must be > 0 (got 0)`},
		{"lr", func(c *config.Config) { c.Train.LR = 0 }, `config: train.lr must be > 0 (got 0)`},
		{"lr nan", func(c *config.Config) { c.Train.LR = math.NaN() },
			`config: train.lr must be a finite number (got NaN)`},
		{"momentum", func(c *config.Config) { c.Train.Momentum = 1 }, `config: train.momentum must be in [0, 1) (got 1)`},
		{"weight decay", func(c *config.Config) { c.Train.WeightDecay = -1e-4 },
			`config: train.weight_decay must be >= 0 (got -0.0001)`},
		{"weight decay inf", func(c *config.Config) { c.Train.WeightDecay = math.Inf(1) },
			`config: train.weight_decay must be a finite number (got +Inf)`},
		{"log every", func(c *config.Config) { c.Train.LogEvery = -1 },
			`config: train.log_every must be >= 0 (0 logs once per epoch) (got -1)`},
		{"on nonfinite", func(c *config.Config) { c.Train.OnNonFinite = "ignore" },
			`config: train.on_nonfinite must be one of stop, skip (got "ignore")`},
		{"on nonfinite skip", func(c *config.Config) { c.Train.OnNonFinite = "skip" }, ""},
		{"max nonfinite steps", func(c *config.Config) { c.Train.MaxNonFiniteSteps = 0 },
			`config: train.max_nonfinite_steps must be >= 1 (skipped steps in a row before the run stops) (got 0)`},

		{"schedule type", func(c *config.Config) { c.Train.Schedule.Type = "linear" },
			`config: train.schedule.type must be one of step, cosine, constant (got "linear")`},
		{"milestones ok", func(c *config.Config) { c.Train.Schedule.Milestones = []int{3, 6, 9} }, ""},
		{"milestone zero", func(c *config.Config) { c.Train.Schedule.Milestones = []int{0, 5} },
			`config: train.schedule.milestones must each be > 0 (got [0, 5])`},
		{"milestones order", func(c *config.Config) { c.Train.Schedule.Milestones = []int{5, 5} },
			`config: train.schedule.milestones must be strictly increasing (got [5, 5])`},
		{"milestones past end (a warning)", func(c *config.Config) { c.Train.Schedule.Milestones = []int{5, 10} }, ""},
		{"milestones ignored by cosine", func(c *config.Config) {
			c.Train.Schedule.Type, c.Train.Schedule.Milestones, c.Train.Schedule.Gamma = "cosine", []int{81, 122}, 0
		}, ""},
		{"gamma", func(c *config.Config) { c.Train.Schedule.Gamma = 1.5 },
			`config: train.schedule.gamma must be in (0, 1] (got 1.5)`},
		{"gamma one", func(c *config.Config) { c.Train.Schedule.Gamma = 1 }, ""},
		{"warmup", func(c *config.Config) { c.Train.Schedule.WarmupEpochs = -0.5 },
			`config: train.schedule.warmup_epochs must be >= 0 (got -0.5)`},
		{"warmup too long", func(c *config.Config) { c.Train.Schedule.WarmupEpochs = 10 },
			`config: train.schedule.warmup_epochs must be < train.epochs (10) (got 10)`},
		{"warm start lr", func(c *config.Config) { c.Train.Schedule.WarmStartLR = -0.01 },
			`config: train.schedule.warm_start_lr must be >= 0 (0 turns the warm start off) (got -0.01)`},
		{"warm start until", func(c *config.Config) { c.Train.Schedule.WarmStartLR = 0.01 },
			`config: train.schedule.warm_start_until_err must be in (0, 1] when train.schedule.warm_start_lr > 0 (got 0)`},
		{"warm start ok", func(c *config.Config) {
			c.Train.Schedule.WarmStartLR, c.Train.Schedule.WarmStartUntilErr = 0.01, 0.8
		}, ""},

		{"eval batch", func(c *config.Config) { c.Eval.BatchSize = 0 }, `config: eval.batch_size must be > 0 (got 0)`},
		{"eval every", func(c *config.Config) { c.Eval.Every = 0 }, `config: eval.every must be >= 1 (epochs) (got 0)`},
		{"checkpoint every", func(c *config.Config) { c.Checkpoint.Every = 0 },
			`config: checkpoint.every must be >= 1 (epochs) (got 0)`},
		{"checkpoint keep", func(c *config.Config) { c.Checkpoint.Keep = 0 },
			`config: checkpoint.keep must be >= 1 (got 0)`},
		{"seed any", func(c *config.Config) { c.Seed = math.MinInt64 }, ""},

		{"precision bf16", func(c *config.Config) { c.CUDA.Precision = "bf16" }, ""},
		{"precision fp16 nhwc on cuda", func(c *config.Config) { c.Device, c.CUDA.Precision, c.CUDA.Layout = "cuda", "fp16", "nhwc" }, ""},
		{"precision", func(c *config.Config) { c.CUDA.Precision = "fp8" },
			`config: cuda.precision must be one of fp32, bf16, fp16 (got "fp8")`},
		{"precision typo", func(c *config.Config) { c.CUDA.Precision = "BF16" },
			`config: cuda.precision must be one of fp32, bf16, fp16 (got "BF16"); did you mean bf16?`},
		{"precision PyTorch name", func(c *config.Config) { c.CUDA.Precision = "bfloat16" },
			`config: cuda.precision must be one of fp32, bf16, fp16 (got "bfloat16"); did you mean bf16?`},
		{"layout PyTorch name", func(c *config.Config) { c.CUDA.Layout = "channels_last" },
			`config: cuda.layout must be one of nchw, nhwc (got "channels_last"); did you mean nhwc?`},
		{"layout typo", func(c *config.Config) { c.CUDA.Layout = "nhwcc" },
			`config: cuda.layout must be one of nchw, nhwc (got "nhwcc"); did you mean nhwc?`},
		{"graphs on cuda", func(c *config.Config) { c.Device, c.CUDA.Graphs = "cuda", true }, ""},
		{"graphs on auto", func(c *config.Config) { c.Device, c.CUDA.Graphs = "auto", true }, ""},
		{"graphs on cpu", func(c *config.Config) { c.Device, c.CUDA.Graphs = "cpu", true },
			`config: cuda.graphs true needs the cuda backend (device is cpu, which has no CUDA graphs): set device: cuda, or cuda.graphs: false`},
		{"precision on cpu", func(c *config.Config) { c.Device, c.CUDA.Precision = "cpu", "bf16" },
			`config: cuda.precision bf16 needs the cuda backend (device is cpu, which computes in fp32): set device: cuda, or cuda.precision: fp32`},
		{"layout on cpu", func(c *config.Config) { c.Device, c.CUDA.Layout = "cpu", "nhwc" },
			`config: cuda.layout nhwc needs the cuda backend (device is cpu, which keeps activations nchw): set device: cuda, or cuda.layout: nchw`},
		{"fp32 nchw on cpu", func(c *config.Config) { c.Device = "cpu" }, ""},

		{"loss scale words", func(c *config.Config) { c.Train.LossScale = config.LossScaleDynamic }, ""},
		{"loss scale static", func(c *config.Config) { c.Train.LossScale = "1024" }, ""},
		{"loss scale zero", func(c *config.Config) { c.Train.LossScale = "0" },
			`config: train.loss_scale must be auto, dynamic, none or a positive number (a static scale) (got "0")`},
		{"loss scale inf", func(c *config.Config) { c.Train.LossScale = "inf" },
			`config: train.loss_scale must be auto, dynamic, none or a positive number (a static scale) (got "inf")`},
		{"loss scale word", func(c *config.Config) { c.Train.LossScale = "dynamc" },
			`config: train.loss_scale must be one of auto, dynamic, none (got "dynamc"); did you mean dynamic?`},
		{"loss scale above float32", func(c *config.Config) { c.Train.LossScale = "1e39" },
			`config: train.loss_scale must be at most float32's largest number, 3.4028235e+38 (got "1e39")`},
		{"loss scale init above float32", func(c *config.Config) { c.Train.LossScaleInit = 1e39 },
			`config: train.loss_scale_init must be at most float32's largest number, 3.4028235e+38 (got 1e+39)`},
		{"loss scale init", func(c *config.Config) { c.Train.LossScaleInit = 0 },
			`config: train.loss_scale_init must be > 0 (GradScaler's init_scale is 65536) (got 0)`},
		{"loss scale growth interval", func(c *config.Config) { c.Train.LossScaleGrowthInterval = 0 },
			`config: train.loss_scale_growth_interval must be >= 1 (steps without overflow before the scale doubles) (got 0)`},

		{"all problems", func(c *config.Config) { c.Device, c.Train.Epochs, c.Checkpoint.Keep = "tpu", -1, 0 },
			"config: device must be one of auto, cpu, cuda (got \"tpu\")\n" +
				"config: train.epochs must be > 0 (got -1)\n" +
				"config: checkpoint.keep must be >= 1 (got 0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.change(&c)
			err := config.Validate(c)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("no error, want %s", tt.want)
			case tt.want != "" && err.Error() != tt.want:
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestValidateReturnsFieldErrors(t *testing.T) {
	c := config.Default()
	c.Train.BatchSize = 0
	var fe *config.FieldError
	if err := config.Validate(c); !errors.As(err, &fe) || fe.Key != "train.batch_size" || fe.Origin != "" {
		t.Errorf("Validate: %v, want a *FieldError for train.batch_size", err)
	}
}

// train.loss_scale auto means GradScaler for fp16 only; a number is a static scale.
func TestLossScaling(t *testing.T) {
	for _, tt := range []struct {
		scale     config.LossScale
		precision string
		want      config.LossScaling
	}{
		{config.LossScaleAuto, "fp32", config.LossScaling{}},
		{config.LossScaleAuto, "bf16", config.LossScaling{}},
		{config.LossScaleAuto, "fp16", config.LossScaling{Dynamic: true}},
		{config.LossScaleDynamic, "fp32", config.LossScaling{Dynamic: true}},
		{config.LossScaleNone, "fp16", config.LossScaling{}},
		{"128", "fp16", config.LossScaling{Static: 128}},
		{"1e3", "fp32", config.LossScaling{Static: 1000}},
	} {
		c := config.Default()
		c.Train.LossScale, c.CUDA.Precision = tt.scale, tt.precision
		tt.want.Init, tt.want.GrowthInterval = 65536, 2000
		if got := c.LossScaling(); got != tt.want {
			t.Errorf("loss_scale %s with %s: %+v, want %+v", tt.scale, tt.precision, got, tt.want)
		}
		if got := c.LossScaling().Enabled(); got != (tt.want.Dynamic || tt.want.Static > 0) {
			t.Errorf("loss_scale %s with %s: Enabled %v", tt.scale, tt.precision, got)
		}
	}
}
