// Command limit is the helper of bench/limit.sh: a bare fasthttp server
// (the machine's limit for an HTTP request of a given size: no
// authentication, no storage) and a preparer that creates a bucket and its
// objects on an S3 endpoint and prints presigned URLs for wrk.
//
//	limit serve --addr 127.0.0.1:PORT --sizes 4096,1048576
//	limit prepare --endpoint URL --bucket B --sizes 4096,1048576
//
// The bare server answers GET /<anything>/obj-<size>, for each of its sizes, with <size> bytes
// and PUT with 200 after reading the whole body, as Vaultaire does. prepare
// reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and prints one line per
// size: "<size> <presigned GET URL> <presigned PUT URL>".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/valyala/fasthttp"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "limit:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: limit serve|prepare ...")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "serve":
		addr := fs.String("addr", "127.0.0.1:0", "listen address")
		sizes := fs.String("sizes", "4096,1048576", "object sizes in bytes it serves, comma separated")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		ns, err := parseSizes(*sizes)
		if err != nil {
			return err
		}
		return serve(*addr, ns)
	case "prepare":
		endpoint := fs.String("endpoint", "", "S3 endpoint URL")
		bucket := fs.String("bucket", "limit", "bucket to create")
		sizes := fs.String("sizes", "4096,1048576", "object sizes in bytes, comma separated")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return prepare(ctx, *endpoint, *bucket, *sizes)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// serve runs the bare server: the same fasthttp settings as Vaultaire's
// front end (streamed request bodies, 64 KiB read buffer), nothing else.
func serve(addr string, sizes []int) error {
	return newBareServer(sizes).ListenAndServe(addr)
}

// parseSizes parses a comma-separated list of sizes in bytes.
func parseSizes(list string) ([]int, error) {
	var ns []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad size %q", s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// newBareServer returns the bare server, answering GETs of the given
// sizes.
func newBareServer(sizes []int) *fasthttp.Server {
	bodies := map[int][]byte{}
	h := func(ctx *fasthttp.RequestCtx) {
		path := ctx.URI().PathOriginal()
		i := bytes.LastIndex(path, []byte("/obj-"))
		size := -1
		if i >= 0 {
			size, _ = strconv.Atoi(string(path[i+5:]))
		}
		switch {
		case ctx.IsGet() && size >= 0:
			b, ok := bodies[size]
			if !ok {
				ctx.Error("unknown size", fasthttp.StatusNotFound)
				return
			}
			ctx.Response.Header.Set("ETag", `"0123456789abcdef0123456789abcdef"`)
			ctx.SetBody(b)
		case ctx.IsPut():
			if r := ctx.RequestBodyStream(); r != nil {
				io.Copy(io.Discard, r)
			}
			ctx.Response.Header.Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		default:
			ctx.Error("not found", fasthttp.StatusNotFound)
		}
	}
	for _, n := range sizes {
		bodies[n] = bytes.Repeat([]byte("x"), n)
	}
	return &fasthttp.Server{
		Handler:                      h,
		StreamRequestBody:            true,
		ReadBufferSize:               64 << 10,
		DisablePreParseMultipartForm: true,
	}
}

func prepare(ctx context.Context, endpoint, bucket, sizes string) error {
	if endpoint == "" {
		return fmt.Errorf("prepare: --endpoint is required")
	}
	c := awss3.New(awss3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	})
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("prepare: create bucket: %w", err)
	}
	ns, err := parseSizes(sizes)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	p := awss3.NewPresignClient(c, func(o *awss3.PresignOptions) { o.Expires = 6 * time.Hour })
	for _, n := range ns {
		key := fmt.Sprintf("obj-%d", n)
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(bytes.Repeat([]byte("x"), n))}); err != nil {
			return fmt.Errorf("prepare: put %s: %w", key, err)
		}
		get, err := p.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("prepare: presign get: %w", err)
		}
		put, err := p.PresignPutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("prepare: presign put: %w", err)
		}
		fmt.Printf("%d %s %s\n", n, get.URL, put.URL)
	}
	return nil
}
