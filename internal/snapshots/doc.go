// Package snapshots is all of replikv's object-storage code: the Store interface with its file:// and s3://
// backends, the snapshot data format (Encoder, Decoder), manifests, and the Repo that creates, lists, restores and
// prunes snapshots of one stream.
//
// Layout under a store's root (see docs/formats.md):
//
//	<stream>/<seq as 20 decimal digits>/data            zstd-compressed snapshot data
//	<stream>/<seq as 20 decimal digits>/manifest.json   written last: a snapshot without a manifest does not exist
//
// Only this package imports the S3 client; everything else sees Store, io.Reader and the sentinels below.
package snapshots
