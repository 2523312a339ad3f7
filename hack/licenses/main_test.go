package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	apache, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]string{
		string(apache): "Apache-2.0",
		"Copyright (c) 2020 X\n\nPermission is hereby granted, free of charge, to any person":                             "MIT",
		"Redistribution and use in source and binary forms, with or without\nmodification ... Neither the name of Google": "BSD-3-Clause",
		"Redistribution and use in source and binary forms, with or without modification, are permitted":                  "BSD-2-Clause",
		"Permission to use, copy, modify, and/or distribute this software for any purpose":                                "ISC",
		"Mozilla Public License Version 2.0\n==================":                                                          "MPL-2.0",
		"All rights reserved. You may not use this.":                                                                      "",
		"GNU GENERAL PUBLIC LICENSE Version 3":                                                                            "",
	} {
		if got := classify(text); got != want {
			t.Errorf("classify(%.40q) = %q, want %q", text, got, want)
		}
	}
}

func TestModuleWithoutLicence(t *testing.T) {
	dir := t.TempDir()
	m := module{Path: "example.com/x", Version: "v1.0.0", Dir: dir}
	if err := readLicences(&m); err == nil || !strings.Contains(err.Error(), "no licence file") {
		t.Errorf("a module without a licence: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "LICENSE"), []byte("Proprietary. All rights reserved."), 0o644)
	if err := readLicences(&m); err == nil || !strings.Contains(err.Error(), "cannot name") {
		t.Errorf("a module with an unknown licence: %v", err)
	}
	m = module{Path: "example.com/y", Version: "v1.0.0", Dir: dir}
	os.WriteFile(filepath.Join(dir, "LICENSE"), []byte("Permission is hereby granted, free of charge, to any person"), 0o644)
	os.WriteFile(filepath.Join(dir, "NOTICE"), []byte("This product includes software developed by Y."), 0o644)
	if err := readLicences(&m); err != nil || strings.Join(m.Licenses, ",") != "MIT" || len(m.Texts) != 2 {
		t.Errorf("MIT with a NOTICE: %v %v %d texts", err, m.Licenses, len(m.Texts))
	}
}
