// This file holds the ImageNet-style folder data set: root/<split>/<class>/<image> (class index = the
// sorted folder names, as torchvision's ImageFolder does), or a flat root/<split>/ folder with a label
// file of "<file> <class>" lines. The file list is scanned once and cached.

package dataset

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"resnet/internal/atomicfile"
)

// FolderIndex is the scanned file list of one split.
type FolderIndex struct {
	Classes []string `json:"classes"`
	Files   []string `json:"files"` // relative to the split directory
	Labels  []int32  `json:"labels"`
	// Stamp identifies the directory state the index was built from (modification times of the split
	// directory, its class folders and the label file); a different stamp means a rescan.
	Stamp string `json:"stamp"`
}

// FolderOptions locate a split.
type FolderOptions struct {
	Root  string
	Split string // "train" or "val"
	// Classes are the class names of a flat split with a label file whose classes are given by name (the
	// train split's classes); nil derives them from the label file.
	Classes []string
	// LabelFile is the "<file> <class>" list of a flat split; empty means <root>/<split>_labels.txt when
	// the split folder has no class folders.
	LabelFile string
	// CacheDir receives the index when <root> is not writable; empty means the user cache directory.
	CacheDir string
}

// imageExts are the file extensions taken as images (case-insensitive).
var imageExts = map[string]bool{".jpeg": true, ".jpg": true, ".png": true}

func isImage(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

// ScanFolder returns the index of a split, from the cache when the directories have not changed.
func ScanFolder(opt FolderOptions) (*FolderIndex, error) {
	dir := filepath.Join(opt.Root, opt.Split)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset imagenet: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dataset imagenet: %s is not a directory", dir)
	}
	classDirs, err := ClassFolders(dir)
	if err != nil {
		return nil, err
	}
	labelFile := opt.LabelFile
	if len(classDirs) == 0 && labelFile == "" {
		labelFile = filepath.Join(opt.Root, opt.Split+"_labels.txt")
	}
	stamp, err := folderStamp(dir, classDirs, labelFile)
	if err != nil {
		return nil, err
	}
	cachePath := indexCachePath(opt, dir)
	if idx, ok := readIndexCache(cachePath, stamp); ok {
		return idx, nil
	}
	var idx *FolderIndex
	if len(classDirs) > 0 {
		idx, err = scanClassFolders(dir, classDirs)
	} else {
		idx, err = scanLabelFile(dir, labelFile, opt.Classes)
	}
	if err != nil {
		return nil, err
	}
	idx.Stamp = stamp
	writeIndexCache(cachePath, opt, dir, idx)
	return idx, nil
}

// ClassFolders lists the class folders of a split directory in label order (sorted by name, hidden ones
// left out), without reading what they hold: the class names of a run trained on the split.
func ClassFolders(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset imagenet: %w", err)
	}
	var classDirs []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classDirs = append(classDirs, e.Name())
		}
	}
	sort.Strings(classDirs)
	return classDirs, nil
}

// IsImage reports whether a file name has an image extension the folder data sets read (.jpg, .jpeg,
// .png, in any case).
func IsImage(name string) bool { return isImage(name) }

func scanClassFolders(dir string, classDirs []string) (*FolderIndex, error) {
	sort.Strings(classDirs)
	idx := &FolderIndex{Classes: classDirs}
	for label, c := range classDirs {
		var files []string
		err := filepath.WalkDir(filepath.Join(dir, c), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isImage(d.Name()) {
				rel, _ := filepath.Rel(dir, path)
				files = append(files, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dataset imagenet: scanning %s: %w", filepath.Join(dir, c), err)
		}
		sort.Strings(files)
		for _, f := range files {
			idx.Files = append(idx.Files, f)
			idx.Labels = append(idx.Labels, int32(label))
		}
	}
	if len(idx.Files) == 0 {
		return nil, fmt.Errorf("dataset imagenet: no .JPEG, .jpg or .png files under %s/<class>/", dir)
	}
	return idx, nil
}

// scanLabelFile reads "<file> <class>" lines; the class is a name from classes (or, with classes nil, any
// name: classes are then the sorted distinct names) or an integer index.
func scanLabelFile(dir, path string, classes []string) (*FolderIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset imagenet: %s has no class folders and its label file cannot be read: %w", dir, err)
	}
	defer f.Close()
	type entry struct {
		file, class string
		line        int
	}
	var entries []entry
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("dataset imagenet: %s line %d: want \"<file> <class>\", got %q", path, line, text)
		}
		entries = append(entries, entry{fields[0], fields[1], line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset imagenet: %s: %w", path, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("dataset imagenet: %s lists no images", path)
	}
	if classes == nil {
		seen := map[string]bool{}
		for _, e := range entries {
			if _, err := strconv.Atoi(e.class); err == nil {
				continue
			}
			if !seen[e.class] {
				seen[e.class] = true
				classes = append(classes, e.class)
			}
		}
		sort.Strings(classes)
	}
	byName := map[string]int{}
	for i, c := range classes {
		byName[c] = i
	}
	idx := &FolderIndex{Classes: classes}
	for _, e := range entries {
		label, ok := byName[e.class]
		if !ok {
			n, err := strconv.Atoi(e.class)
			if err != nil || n < 0 || (len(classes) > 0 && n >= len(classes)) {
				return nil, fmt.Errorf("dataset imagenet: %s line %d: unknown class %q (want one of the %d class names or an index)", path, e.line, e.class, len(classes))
			}
			label = n
		}
		if !isImage(e.file) {
			return nil, fmt.Errorf("dataset imagenet: %s line %d: %q is not a .JPEG, .jpg or .png file", path, e.line, e.file)
		}
		idx.Files = append(idx.Files, filepath.ToSlash(e.file))
		idx.Labels = append(idx.Labels, int32(label))
	}
	return idx, nil
}

// folderStamp summarises the modification times that invalidate a cached index.
func folderStamp(dir string, classDirs []string, labelFile string) (string, error) {
	h := sha256.New()
	add := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("dataset imagenet: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", p, fi.ModTime().UnixNano(), fi.Size())
		return nil
	}
	if err := add(dir); err != nil {
		return "", err
	}
	for _, c := range classDirs {
		if err := add(filepath.Join(dir, c)); err != nil {
			return "", err
		}
	}
	if len(classDirs) == 0 && labelFile != "" {
		if err := add(labelFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// indexCachePath is <root>/.resnet-index-<split>.json when the root is writable, else a file named by the
// hash of the split's absolute path in the cache directory.
func indexCachePath(opt FolderOptions, dir string) string {
	if f, err := os.CreateTemp(opt.Root, ".resnet-probe-*"); err == nil {
		name := f.Name()
		f.Close()
		os.Remove(name)
		return filepath.Join(opt.Root, ".resnet-index-"+opt.Split+".json")
	}
	cache := opt.CacheDir
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(base, "resnet", "index")
	}
	abs, _ := filepath.Abs(dir)
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(cache, hex.EncodeToString(sum[:8])+"-"+opt.Split+".json")
}

func readIndexCache(path, stamp string) (*FolderIndex, bool) {
	if path == "" {
		return nil, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var idx FolderIndex
	if json.Unmarshal(b, &idx) != nil || idx.Stamp != stamp || len(idx.Files) != len(idx.Labels) || len(idx.Files) == 0 {
		return nil, false
	}
	return &idx, true
}

// writeIndexCache stores the index; failing to is not an error (the next run scans again).
func writeIndexCache(path string, opt FolderOptions, dir string, idx *FolderIndex) {
	if path == "" {
		return
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		_ = atomicfile.WriteBytes(path, b, 0o644)
	}
}
