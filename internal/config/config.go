// Package config holds the typed run configuration, its built-in defaults and its validation. The CLI
// resolves defaults < YAML file < RESNET_* environment < flags (and --set key=value) into one Config;
// nothing below the CLI reads viper or looks a value up by string.
package config

// Config is a resolved run configuration. The mapstructure tags are the YAML keys.
type Config struct {
	// Name names the run; the default output directory is runs/<name>. Load defaults it to the config
	// file's base name without extension (or the preset's name), and to "default" without a file.
	Name string `mapstructure:"name" yaml:"name" json:"name"`
	// Seed drives weight init, data order and augmentation. Same seed, same config: same numbers on CPU.
	Seed int64 `mapstructure:"seed" yaml:"seed" json:"seed"`
	// Device is auto, cpu or cuda.
	Device  string        `mapstructure:"device" yaml:"device" json:"device"`
	Model   ModelConfig   `mapstructure:"model" yaml:"model" json:"model"`
	Dataset DatasetConfig `mapstructure:"dataset" yaml:"dataset" json:"dataset"`
	Train   TrainConfig   `mapstructure:"train" yaml:"train" json:"train"`
	Eval    EvalConfig    `mapstructure:"eval" yaml:"eval" json:"eval"`
	// Checkpoint controls how often and how many checkpoints are kept.
	Checkpoint CheckpointConfig `mapstructure:"checkpoint" yaml:"checkpoint" json:"checkpoint"`
	// CUDA holds settings of the GPU backend.
	CUDA CUDAConfig `mapstructure:"cuda" yaml:"cuda" json:"cuda"`
}

// CUDAConfig holds settings of the GPU backend.
type CUDAConfig struct {
	// Fuse runs the fused kernels (BN + ReLU, BN + add + ReLU, ...); false runs their unfused reference
	// path, for comparison and debugging.
	Fuse bool `mapstructure:"fuse" yaml:"fuse" json:"fuse"`
	// Deterministic runs only convolution algorithms that give the same bits on every run, chosen by
	// cuDNN's heuristics (no timing, so the same GPU and libraries always choose the same ones); false
	// allows any algorithm.
	Deterministic bool `mapstructure:"deterministic" yaml:"deterministic" json:"deterministic"`
	// Benchmark times the candidate algorithms of each convolution shape once (cudnnFind*AlgorithmEx) and
	// keeps the fastest, as torch.backends.cudnn.benchmark does; with Deterministic, the fastest
	// deterministic one.
	Benchmark bool `mapstructure:"benchmark" yaml:"benchmark" json:"benchmark"`
	// Precision is the type of the 4-D activations and their gradients: fp32, or bf16 / fp16 with the
	// convolutions accumulating in f32 and the weights, BN statistics, classifier, loss and optimizer in
	// f32, as torch.autocast splits them. Only the cuda backend runs bf16 and fp16.
	Precision string `mapstructure:"precision" yaml:"precision" json:"precision"`
	// Layout is the memory order of the 4-D activations: nchw, or nhwc (PyTorch's channels_last). Only the
	// cuda backend runs nhwc.
	Layout string `mapstructure:"layout" yaml:"layout" json:"layout"`
	// Graphs records each training step's forward, loss and backward as a CUDA graph once per batch size
	// and loss scale, and replays it: one launch instead of hundreds. The numbers are the same bits.
	Graphs bool `mapstructure:"graphs" yaml:"graphs" json:"graphs"`
}

// ModelConfig selects an architecture from the zoo and adjusts it.
type ModelConfig struct {
	// Arch is a name of the model table (internal/model/names.go): resnet18..152, plain18..152,
	// cifar_resnetN, cifar_plainN (N = 6n+2), in any of its spellings (res50, ResNet-50, cifar_res56), or a
	// family name without its depth (cifar_resnet) together with Depth.
	Arch string `mapstructure:"arch" yaml:"arch" json:"arch"`
	// Depth replaces the depth of the arch's name (cifar_resnet20 with Depth 56 is cifar_resnet56). 0 keeps
	// the arch's own.
	Depth int `mapstructure:"depth" yaml:"depth" json:"depth"`
	// Shortcut is A (zero-padded identity), B (projection where the shape changes) or C (projection
	// everywhere). Empty keeps the family default: A for CIFAR, B for ImageNet.
	Shortcut string `mapstructure:"shortcut" yaml:"shortcut" json:"shortcut"`
	// StrideIn1x1 puts a bottleneck's stride on its first 1x1 conv (the paper's original); the default
	// puts it on the 3x3 (torchvision, "v1.5").
	StrideIn1x1 bool `mapstructure:"stride_in_1x1" yaml:"stride_in_1x1" json:"stride_in_1x1"`
	// ZeroInitResidual starts the last BN gamma of every residual branch at 0.
	ZeroInitResidual bool `mapstructure:"zero_init_residual" yaml:"zero_init_residual" json:"zero_init_residual"`
	// NumClasses of the classifier; 0 takes the dataset's.
	NumClasses int `mapstructure:"num_classes" yaml:"num_classes" json:"num_classes"`
	// Dropout is the probability of dropping each element between the two convolutions of a
	// pre-activation basic unit in training (inverted dropout; Wide ResNets use 0.3). 0 drops nothing.
	Dropout float64 `mapstructure:"dropout" yaml:"dropout" json:"dropout"`
	// SyncBN synchronises the BN statistics of training over the ranks of a data-parallel job, as
	// PyTorch's SyncBatchNorm (model.Net.SetBatchNormSync); a single process is unaffected.
	SyncBN bool `mapstructure:"sync_bn" yaml:"sync_bn" json:"sync_bn"`
}

// DatasetConfig selects the data source.
type DatasetConfig struct {
	// Name is synthetic (built in, no files), cifar10, cifar100 or imagenet.
	Name string `mapstructure:"name" yaml:"name" json:"name"`
	// Root is the data directory for file-backed datasets.
	Root string `mapstructure:"root" yaml:"root" json:"root"`
	// TrainSize and TestSize size the synthetic set (ignored by file-backed ones).
	TrainSize int `mapstructure:"train_size" yaml:"train_size" json:"train_size"`
	TestSize  int `mapstructure:"test_size" yaml:"test_size" json:"test_size"`
	// Augment applies the training augmentation (CIFAR: pad 4, random 32x32 crop, horizontal flip).
	Augment bool `mapstructure:"augment" yaml:"augment" json:"augment"`
	// Workers is the number of loader goroutines; 0 means one per CPU.
	Workers int `mapstructure:"workers" yaml:"workers" json:"workers"`
	// Strict stops training at the first unreadable image instead of skipping and counting it.
	Strict bool `mapstructure:"strict" yaml:"strict" json:"strict"`
	// ValSize holds out the last ValSize training examples of a CIFAR set as a validation split (the
	// paper's 45k/5k split uses 5000); 0 keeps them all for training.
	ValSize int `mapstructure:"val_size" yaml:"val_size" json:"val_size"`
	// EvalSplit is the split evaluated during training: test, or val (needs val_size for CIFAR).
	EvalSplit string `mapstructure:"eval_split" yaml:"eval_split" json:"eval_split"`
	// CoarseLabels trains CIFAR-100 on its 20 coarse classes instead of the 100 fine ones.
	CoarseLabels bool `mapstructure:"coarse_labels" yaml:"coarse_labels" json:"coarse_labels"`
	// TrainTransform is the ImageNet training augmentation: rrc (Inception-style random-resized crop, the
	// modern default) or scale (the paper's: shorter side random in [256, 480], random 224 crop).
	TrainTransform string `mapstructure:"train_transform" yaml:"train_transform" json:"train_transform"`
	// PCALighting adds AlexNet-style PCA colour noise (the paper's "standard colour augmentation").
	PCALighting bool `mapstructure:"pca_lighting" yaml:"pca_lighting" json:"pca_lighting"`
	// AutoAugment is the automatic augmentation policy of the training images, after the crop and flip
	// and before normalisation, as torchvision defines it: none, rand-m<M>-n<N> (RandAugment with
	// magnitude M of 31 bins and N ops an image; the references use rand-m9-n2), trivial
	// (TrivialAugmentWide), autoaugment-imagenet or autoaugment-cifar10 (AutoAugment's learned policies).
	AutoAugment string `mapstructure:"auto_augment" yaml:"auto_augment" json:"auto_augment"`
	// RandomErasing is the probability of erasing a random box of each training image after
	// normalisation (torchvision's RandomErasing: 2-33% of the area, ratio 0.3-3.3, set to 0); 0 is off.
	RandomErasing float64 `mapstructure:"random_erasing" yaml:"random_erasing" json:"random_erasing"`
	// ImageSize is the ImageNet crop side (224), and ResizeSize the shorter side before the evaluation
	// centre crop (256).
	ImageSize  int `mapstructure:"image_size" yaml:"image_size" json:"image_size"`
	ResizeSize int `mapstructure:"resize_size" yaml:"resize_size" json:"resize_size"`
	// ValLabels is the "<file> <class>" label file of a flat ImageNet val folder; empty means
	// <root>/val_labels.txt when val/ has no class folders.
	ValLabels string `mapstructure:"val_labels" yaml:"val_labels" json:"val_labels"`
	// Mean and Std normalise each input channel, (pixel - mean) / std, one value per channel. Empty means
	// the data set's own: CIFAR's and the synthetic set's are measured over their whole training split,
	// ImageNet's are torchvision's constants. NormScale says which scale they are written in: 255 (pixel
	// values 0..255, the default) or 1 (0..1, as torchvision writes them: mean [0.485, 0.456, 0.406]).
	Mean      []float64 `mapstructure:"mean" yaml:"mean" json:"mean"`
	Std       []float64 `mapstructure:"std" yaml:"std" json:"std"`
	NormScale float64   `mapstructure:"norm_scale" yaml:"norm_scale" json:"norm_scale"`
}

// Normalization is the per-channel mean and standard deviation that dataset.mean and dataset.std set, in
// the 0..255 pixel scale, and whether they are set (when not, the data set's own apply).
func (d DatasetConfig) Normalization() (mean, std [3]float32, set bool) {
	if len(d.Mean) == 0 {
		return mean, std, false
	}
	k := 255 / d.NormScale
	for i := range min(len(d.Mean), len(d.Std), 3) {
		mean[i], std[i] = float32(d.Mean[i]*k), float32(d.Std[i]*k)
	}
	return mean, std, true
}

// TrainConfig is the optimisation recipe.
type TrainConfig struct {
	BatchSize int `mapstructure:"batch_size" yaml:"batch_size" json:"batch_size"`
	Epochs    int `mapstructure:"epochs" yaml:"epochs" json:"epochs"`
	// TargetErr, when not 0, ends the run at the first evaluation whose top-1 error is at or below it (a
	// fraction: 0.07 is 7%), with a checkpoint; metrics.jsonl's wall_seconds then reads the time it took.
	TargetErr   float64 `mapstructure:"target_err" yaml:"target_err" json:"target_err"`
	LR          float64 `mapstructure:"lr" yaml:"lr" json:"lr"`
	Momentum    float64 `mapstructure:"momentum" yaml:"momentum" json:"momentum"`
	Nesterov    bool    `mapstructure:"nesterov" yaml:"nesterov" json:"nesterov"`
	WeightDecay float64 `mapstructure:"weight_decay" yaml:"weight_decay" json:"weight_decay"`
	// NoDecayBNBias exempts BN gamma/beta and biases from weight decay.
	NoDecayBNBias bool           `mapstructure:"no_decay_bn_bias" yaml:"no_decay_bn_bias" json:"no_decay_bn_bias"`
	Schedule      ScheduleConfig `mapstructure:"schedule" yaml:"schedule" json:"schedule"`
	// LogEvery prints a log line every this many steps when output is not a terminal (0: once per epoch).
	LogEvery int `mapstructure:"log_every" yaml:"log_every" json:"log_every"`
	// OnNonFinite is what a step whose loss, BN running statistics or gradients hold a NaN or an infinity
	// does: "stop" the run with an error, or "skip" the update (weights, momentum and BN statistics stay as
	// they were).
	OnNonFinite string `mapstructure:"on_nonfinite" yaml:"on_nonfinite" json:"on_nonfinite"`
	// MaxNonFiniteSteps stops a run that skips them after this many such steps in a row.
	MaxNonFiniteSteps int `mapstructure:"max_nonfinite_steps" yaml:"max_nonfinite_steps" json:"max_nonfinite_steps"`
	// LossScale multiplies the loss before the backward pass, and the update divides it back out, so that
	// small fp16 gradients do not underflow: auto (dynamic for cuda.precision fp16, none otherwise),
	// dynamic (torch.amp.GradScaler's rule: a step whose gradients overflow is skipped and the scale
	// halved, and it doubles after LossScaleGrowthInterval steps in a row without overflow), none, or a
	// positive number, a static scale.
	LossScale LossScale `mapstructure:"loss_scale" yaml:"loss_scale" json:"loss_scale"`
	// LossScaleInit is the dynamic scale's starting value (GradScaler's init_scale, 65536).
	LossScaleInit float64 `mapstructure:"loss_scale_init" yaml:"loss_scale_init" json:"loss_scale_init"`
	// LossScaleGrowthInterval is how many steps in a row without overflow double the dynamic scale
	// (GradScaler's growth_interval, 2000).
	LossScaleGrowthInterval int `mapstructure:"loss_scale_growth_interval" yaml:"loss_scale_growth_interval" json:"loss_scale_growth_interval"`
	// LabelSmoothing mixes each target with the uniform distribution: t (1-eps) + eps/K (PyTorch's
	// CrossEntropyLoss label_smoothing; 0: off).
	LabelSmoothing float64 `mapstructure:"label_smoothing" yaml:"label_smoothing" json:"label_smoothing"`
	// MixupAlpha and CutMixAlpha turn on mixup and CutMix (torchvision's v2.MixUp and v2.CutMix, each
	// example paired with the one before it in the batch) with lam drawn from Beta(alpha, alpha); 0: off.
	// With both on, each mixed batch takes one of them at random. MixProb is the share of batches mixed.
	MixupAlpha  float64 `mapstructure:"mixup_alpha" yaml:"mixup_alpha" json:"mixup_alpha"`
	CutMixAlpha float64 `mapstructure:"cutmix_alpha" yaml:"cutmix_alpha" json:"cutmix_alpha"`
	MixProb     float64 `mapstructure:"mix_prob" yaml:"mix_prob" json:"mix_prob"`
	// EMADecay keeps an exponential moving average of the weights and BN statistics, updated after every
	// EMAEvery-th step of an epoch by ema += (1 - decay) (w - ema), evaluated and checkpointed beside the
	// weights (0: off). torchvision's reference scales its --model-ema-decay by its step count; the presets
	// give the decay it ends up using.
	EMADecay float64 `mapstructure:"ema_decay" yaml:"ema_decay" json:"ema_decay"`
	EMAEvery int     `mapstructure:"ema_every" yaml:"ema_every" json:"ema_every"`
	// AccumulateSteps splits each batch of BatchSize into this many micro-batches that run forward and
	// backward one after another, their gradients added (each micro-batch's loss weighted 1/AccumulateSteps)
	// before one optimizer step: the batch of BatchSize on the memory of a micro-batch. Each micro-batch's
	// BN layers normalise with its own statistics and update the running ones, as in PyTorch.
	AccumulateSteps int `mapstructure:"accumulate_steps" yaml:"accumulate_steps" json:"accumulate_steps"`
}

// MicroBatch is the batch of one forward and backward pass: BatchSize split into AccumulateSteps.
func (t TrainConfig) MicroBatch() int { return t.BatchSize / max(t.AccumulateSteps, 1) }

// What a training step does whose loss, BN statistics or gradients are not finite (train.on_nonfinite).
const (
	OnNonFiniteStop = "stop"
	OnNonFiniteSkip = "skip"
)

// ScheduleConfig is the learning-rate schedule. Positions are in epochs; the rate is computed per step.
type ScheduleConfig struct {
	// Type is step, cosine or constant.
	Type string `mapstructure:"type" yaml:"type" json:"type"`
	// Milestones (epochs, increasing) at which a step schedule multiplies the rate by Gamma.
	Milestones []int   `mapstructure:"milestones" yaml:"milestones" json:"milestones"`
	Gamma      float64 `mapstructure:"gamma" yaml:"gamma" json:"gamma"`
	// WarmupEpochs ramps the rate linearly from WarmupStart times it over this many epochs (may be
	// fractional): PyTorch's LinearLR(start_factor=WarmupStart) before the schedule.
	WarmupEpochs float64 `mapstructure:"warmup_epochs" yaml:"warmup_epochs" json:"warmup_epochs"`
	WarmupStart  float64 `mapstructure:"warmup_start" yaml:"warmup_start" json:"warmup_start"`
	// PerEpoch holds the rate for a whole epoch, at its value at the epoch's start, as a PyTorch
	// scheduler stepped once per epoch (torchvision's reference scripts) gives it; otherwise warm-up and
	// cosine move every step.
	PerEpoch bool `mapstructure:"per_epoch" yaml:"per_epoch" json:"per_epoch"`
	// WarmStartLR, when > 0, is used instead of the schedule until the running training error of the
	// epoch falls below WarmStartUntilErr (the paper's ResNet-110 recipe: 0.01 until error < 80%).
	WarmStartLR       float64 `mapstructure:"warm_start_lr" yaml:"warm_start_lr" json:"warm_start_lr"`
	WarmStartUntilErr float64 `mapstructure:"warm_start_until_err" yaml:"warm_start_until_err" json:"warm_start_until_err"`
}

// EvalConfig controls evaluation during training.
type EvalConfig struct {
	BatchSize int `mapstructure:"batch_size" yaml:"batch_size" json:"batch_size"`
	// Every is the evaluation period in epochs.
	Every int `mapstructure:"every" yaml:"every" json:"every"`
}

// CheckpointConfig controls checkpointing.
type CheckpointConfig struct {
	// Every is the checkpoint period in epochs (a checkpoint is also written at the end and on SIGINT/SIGTERM).
	Every int `mapstructure:"every" yaml:"every" json:"every"`
	// Keep is how many checkpoints are kept (the oldest are deleted).
	Keep int `mapstructure:"keep" yaml:"keep" json:"keep"`
}

// Default returns the built-in defaults: a CIFAR ResNet-20 on the synthetic set with the paper's CIFAR
// optimiser settings.
func Default() Config {
	return Config{
		Name:   "default",
		Seed:   1,
		Device: "auto",
		Model:  ModelConfig{Arch: "cifar_resnet20"},
		Dataset: DatasetConfig{
			Name:           "synthetic",
			TrainSize:      10000,
			TestSize:       2000,
			Augment:        true,
			EvalSplit:      "test",
			TrainTransform: "rrc",
			AutoAugment:    "none",
			ImageSize:      224,
			ResizeSize:     256,
			NormScale:      255,
		},
		Train: TrainConfig{
			BatchSize:   128,
			Epochs:      10,
			LR:          0.1,
			Momentum:    0.9,
			WeightDecay: 1e-4,
			Schedule:    ScheduleConfig{Type: "step", Gamma: 0.1},

			OnNonFinite:       OnNonFiniteStop,
			MaxNonFiniteSteps: 10,

			LossScale:               LossScaleAuto,
			LossScaleInit:           65536,
			LossScaleGrowthInterval: 2000,
			MixProb:                 1,
			EMAEvery:                1,
			AccumulateSteps:         1,
		},
		Eval:       EvalConfig{BatchSize: 256, Every: 1},
		Checkpoint: CheckpointConfig{Every: 1, Keep: 3},
		CUDA:       CUDAConfig{Fuse: true, Deterministic: true, Precision: "fp32", Layout: "nchw"},
	}
}
