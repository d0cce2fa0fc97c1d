
$secret = "3ha6eonoa9icsckw8kccos084w0c0000g08g40oo4kww0gc8w4";

// X-Akeneo-Request-Signature
$originalSignature =
  "d4582dd13a7b654c212d70b4c705e0ab0c0e6eb7f6524080f4d39121f88e6061";
// X-Akeneo-Request-Timestamp
$timestamp = "1602565368";

// The whole request body.
$requestBody = '{"events":[{"action": "product.created", ...}]}';

// Prepare the event payload.
$signedPayload = $timestamp . "." . $requestBody;

// Generate a hash signature.
$generatedSignature = hash_hmac("sha256", $signedPayload, $secret);

// Compare the original and generated signature.
if (false === hash_equals($originalSignature, $generatedSignature)) {
  throw new \Exception("Invalid signature");
}
