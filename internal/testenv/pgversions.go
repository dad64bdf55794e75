package testenv

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// EnvPostgresVersion selects the major version (14 to 18) of the PostgreSQL servers the tests start
// themselves (the shared one of `make test` included); unset means the system's (PATH, then the
// newest /usr/lib/postgresql/*/bin).
const EnvPostgresVersion = "PGCDC_TEST_PG_VERSION"

// PostgresVersions are the major versions pgcdc supports and the cross-version suite tests.
var PostgresVersions = []int{14, 15, 16, 17, 18}

// PostgresBinDir returns a directory holding initdb, postgres and pg_ctl of major version v. Zero
// means PGCDC_TEST_PG_VERSION, or the system's binaries when that is unset. A version installed
// under /usr/lib/postgresql/<v>/bin is used as it is; any other comes from Maven Central (zonky's
// embedded PostgreSQL bundles, test/postgres/pom.xml), fetched once and unpacked into
// .cache/postgres/<release>/server.
func PostgresBinDir(v int) (string, error) {
	if v == 0 {
		env := os.Getenv(EnvPostgresVersion)
		if env == "" {
			return findPostgresBin()
		}
		n, err := strconv.Atoi(env)
		if err != nil {
			return "", fmt.Errorf("%s=%q: want a major version such as 17", EnvPostgresVersion, env)
		}
		v = n
	}
	known := false
	for _, k := range PostgresVersions {
		known = known || k == v
	}
	if !known {
		return "", fmt.Errorf("PostgreSQL %d: the test environment provides %v", v, PostgresVersions)
	}
	system := fmt.Sprintf("/usr/lib/postgresql/%d/bin", v)
	if _, err := os.Stat(filepath.Join(system, "initdb")); err == nil {
		return system, nil
	}
	return zonkyPostgres(v)
}

// zonkyPostgres fetches and unpacks the bundle of major version v.
func zonkyPostgres(v int) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	pom := filepath.Join(root, "test", "postgres", "pom.xml")
	release, err := PomProperty(pom, fmt.Sprintf("pg%d.binaries", v))
	if err != nil {
		return "", err
	}
	libs, err := MavenLibs(pom, filepath.Join("postgres", release, "maven"), "-Dpg.binaries="+release)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL %s server binaries: %w", release, err)
	}
	bin := ""
	err = Cached(filepath.Join(root, ".cache", "postgres", release, "server"), func(dir string) error {
		jars, _ := filepath.Glob(filepath.Join(libs, "embedded-postgres-binaries-*.jar"))
		if len(jars) != 1 {
			return fmt.Errorf("%s: want one embedded-postgres-binaries jar, found %v", libs, jars)
		}
		return unpackBundle(jars[0], dir)
	}, func(dir string) { bin = filepath.Join(dir, "bin") })
	if err != nil {
		return "", fmt.Errorf("unpack PostgreSQL %s: %w", release, err)
	}
	return bin, nil
}

// unpackBundle extracts the .txz inside a zonky jar into dir with tar (xz-utils must be installed).
func unpackBundle(jar, dir string) error {
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".txz") {
			continue
		}
		if _, err := exec.LookPath("xz"); err != nil {
			return errors.New("xz is not installed (tar needs it to unpack the PostgreSQL bundle): install xz-utils")
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		cmd := exec.Command("tar", "-xJf", "-", "-C", dir)
		cmd.Stdin = io.Reader(rc)
		if err := runQuiet(cmd); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, "bin", "postgres")); err != nil {
			return fmt.Errorf("%s holds no bin/postgres: %w", f.Name, err)
		}
		return nil
	}
	return fmt.Errorf("%s holds no .txz bundle", jar)
}
